// train_gpt's command line, DeepSpeed config reading, communicator bootstrap and training loop.
#ifndef ZERORUN_RUNTIME_EXAMPLES_GPT_TRAIN_SETUP_H_
#define ZERORUN_RUNTIME_EXAMPLES_GPT_TRAIN_SETUP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gpt_model.h"
#include "zerorun/comm.h"
#include "zerorun/coordinator_client.h"
#include "zerorun/kv_store.h"
#include "zerorun/lr_schedule.h"
#include "zerorun/monitor.h"
#include "zerorun/zero_engine.h"

namespace zerorun::gpt {

// --inject-failure STEP[:RANK[:ATTEMPTS]] (tests of --max-restarts): after step STEP (and its
// save), rank RANK (default: the last) exits with code 3 while ZERORUN_RESTART_COUNT < ATTEMPTS
// (default 1: only the first attempt fails).
struct InjectedFailure {
  int step = -1;
  int rank = -1;
  int attempts = 1;
  int signal =
      0;  // --inject-signal N: the rank dies of signal N (SIGKILL: an OOM kill), not exit 3.
};

struct TrainArgs {
  std::string config_path;   // --deepspeed_config (under zerorun, $ZERORUN_CONFIG is read).
  std::string check_golden;  // --check-golden FILE
  std::string data;          // --data FILE (character-level corpus)
  bool random_tokens = false;
  GptConfig model{0, 64, 4, 2, 64};  // vocab 0: from the corpus.
  int steps = 200;
  int log_every = 10;
  uint64_t seed = 1234;
  std::string save_dir;     // --save-dir DIR: checkpoints (DIR/global_step<N>, DIR/latest)
  int save_every = 0;       // --save-every K: a checkpoint after every K-th step (0: none)
  int keep_last = 0;        // --keep-last N: keep the newest N checkpoints (0: all)
  std::string init_from;    // --init-from F.safetensors: initial weights (ImportWeights)
  bool async_save = false;  // --async-save: write checkpoints while the next steps train
  bool resume = false;      // --resume [TAG]: load DIR/TAG (default: DIR/latest) and go on
  std::string resume_tag;
  bool print_checksum = false;  // --print-checksum: FNV-1a of every parameter's bits at the end
  bool print_losses = false;    // --print-losses: "train_gpt: loss STEP %.9e" at every step
  InjectedFailure inject_failure;
  std::vector<std::string> argv;  // The arguments as given (for "auto" values).
};

// Returns -1 to go on, or the exit code (0 for --help, 2 for bad arguments).
int ParseTrainArgs(int argc, char** argv, TrainArgs* args);

struct TrainSetup {
  int rank = 0, world_size = 1;
  std::unique_ptr<CoordinatorClient> coordinator;  // Null when not started by zerorun.
  std::unique_ptr<KvStore> store;
  std::unique_ptr<Communicator> comm;
  ZeroOptions options;             // Everything ReadEngineConfig reads from the config.
  std::string config_json;         // The effective config (saved in checkpoint manifests).
  int64_t train_batch = 0;         // train_batch_size (the effective config's, resolved)
  int micro_batch = 0;             // train_micro_batch_size_per_gpu
  std::vector<std::string> notes;  // Config keys accepted with a different effect, in words.
  LrSchedule lr;
  std::unique_ptr<TrainingMonitor> monitor;  // csv_monitor / tensorboard (rank 0 writes).
};

// InitFromEnv (rank facts, the effective config, store, communicator), then ReadEngineConfig on
// that config: InvalidArgument naming the file and key for what libzerorun refuses (offload...).
absl::StatusOr<TrainSetup> Setup(const TrainArgs& args);

// ParamSource over a ZeroEngine: acquires each unit for one pass and releases it when the model
// is done with it; the first error is kept (the model then reads zeros) and returned by status().
class EngineParams : public ParamSource {
 public:
  EngineParams(ZeroEngine& engine, Pass pass);
  TensorPtrs Acquire(size_t unit) override;
  void Release(size_t unit) override;
  const absl::Status& status() const { return status_; }

 private:
  ZeroEngine& engine_;
  const Pass pass_;
  std::vector<std::vector<UnitGuard>> guards_;  // Per unit: nested acquires.
  absl::Status status_;
  std::vector<float> sink_;
};

// One micro-step: forward then backward, each acquiring unit by unit; gradients go straight
// into the engine (GradsReady per unit as backward completes it), scaled by its loss scale.
// Returns this rank's mean loss.
absl::StatusOr<float> TrainMicroStep(GptModel& model, ZeroEngine& engine, const int* tokens,
                                     int batch);

// Trains on the corpus (or random tokens), logging the loss from rank 0 and reporting every
// step to the coordinator; resumes with --resume, and after a zerorun restart
// (ZERORUN_RESTART_COUNT > 0) from --save-dir's latest checkpoint when there is one. A global
// batch's rows depend on (seed, step, row) only, so a run at another world size with the same
// train_batch_size trains on the same data. Returns the exit code (train_loop.cc).
int Train(const TrainArgs& args, TrainSetup& setup);

}  // namespace zerorun::gpt

#endif  // ZERORUN_RUNTIME_EXAMPLES_GPT_TRAIN_SETUP_H_
