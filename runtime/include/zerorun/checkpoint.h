// Checkpoints of a ZeroEngine: <save_dir>/<tag>/ holds one shard file per rank (its fp32 masters,
// Adam m and v in state order) and manifest.json (layout, per-rank byte ranges, sha256 per file,
// world size, stage, dtype, version, the caller's state); <save_dir>/latest names the newest
// complete tag (DeepSpeed's convention). Saves are atomic: a crash or a failing rank leaves the
// previous checkpoint and `latest` untouched. Loading reshards: any world size and ZeRO stage, and
// another working dtype (masters are fp32).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_CHECKPOINT_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_CHECKPOINT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "zerorun/comm.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

// DeepSpeed's default tag for step N: "global_step<N>".
std::string DefaultTag(int64_t step);

// What one rank's save did (SaveCheckpoint, PendingSave::stats()).
struct SaveStats {
  uint64_t bytes = 0;           // This rank's shard file.
  double snapshot_seconds = 0;  // Async: copying the shard into the staging buffer. Sync: 0.
  double write_seconds = 0;     // Writing and fsyncing the shard file.
  bool direct = false;          // Written with O_DIRECT (else buffered: the file system refused).
  bool streamed = false;        // State on NVMe: written from it before returning, even when async.
};

struct SaveOptions {
  int keep_last = 0;      // > 0: rank 0 then removes the oldest complete checkpoints of `dir`
                          // (by their manifests' step) until keep_last remain; 0 keeps all.
  bool direct_io = true;  // O_DIRECT where the file system accepts it.
  // Rank 0's: a safetensors file's bytes holding what the model has but the engine does not train
  // (a torch model's frozen parameters). Written as frozen.safetensors and listed in the manifest
  // ("frozen": file, bytes, sha256); `zerorun ckpt consolidate` adds its tensors, a load leaves it
  // (the model holds them). Empty: none.
  std::string frozen;
};

// A save whose shard files are being written on a background thread while training goes on
// (StartCheckpoint). The training state was copied when it started; Poll or Wait publishes it.
class PendingSave {
 public:
  struct Impl;
  explicit PendingSave(std::unique_ptr<Impl> impl);
  // Waits for this rank's write; a save never published leaves only <dir>/<tag>.tmp, which the
  // next save of that tag removes: `latest` still names the previous checkpoint.
  ~PendingSave();

  // Collective (one 4-byte all-reduce while writes run), after the engine's collectives in flight
  // (ZeroEngine::Sync: overlap_comm's gathers share `comm`). False while some rank still writes;
  // once every rank's shard is on disk, agrees on the outcome, publishes the checkpoint
  // (manifest, rename, `latest`) and returns true, or returns the error naming the failing
  // rank(s) and path. The engine the save started from must outlive it.
  absl::StatusOr<bool> Poll(Communicator& comm);
  // Collective: syncs the engine, waits for every rank's write, then publishes as Poll does.
  absl::Status Wait(Communicator& comm);
  const SaveStats& stats() const;
  const std::string& path() const;  // <dir>/<tag>

 private:
  std::unique_ptr<Impl> impl_;
};

// Collective: every rank calls it with the same arguments. Copies this rank's shard (fp32
// masters, Adam m and v in state order) into an aligned staging buffer (kept after the save is
// published, for the next save of the same size: memory of one shard), creates <dir>/<tag>.tmp/
// and starts writing the shard there on a thread (O_DIRECT, fsynced). Where some of the state is
// on NVMe (ZeroEngine::state_on_nvme) it is streamed from there before this returns instead, as
// SaveCheckpoint does (stats().streamed): a snapshot would need all of it in memory. `client_state`
// (JSON text: the caller's step, LR schedule, data position) and `config_json` go into the
// manifest.
absl::StatusOr<std::unique_ptr<PendingSave>> StartCheckpoint(ZeroEngine& engine, Communicator& comm,
                                                             const std::string& dir,
                                                             const std::string& tag,
                                                             const std::string& client_state,
                                                             const std::string& config_json,
                                                             const SaveOptions& options = {});

// Not collective. Makes the staging buffer of `engine`'s asynchronous saves on a background
// thread now, so the first StartCheckpoint only copies (a fresh buffer's pages cost more than the
// copy: ~1 s per 320 MiB on a VM). Optional; the buffer is this rank's shard size (none with
// state on NVMe).
void PrepareAsyncCheckpoint(const ZeroEngine& engine);

// Collective: as StartCheckpoint then Wait, but written straight from the engine's state arrays
// (no staging copy: no memory beyond two 16 MiB buffers) before it returns. Writes
// <dir>/<tag>.tmp/, fsyncs every file and the directories, renames it to <dir>/<tag> once every
// rank's shard is on disk, then replaces <dir>/latest. On any rank's failure every rank returns an
// error naming the failing rank(s) and path; nothing of an earlier checkpoint is touched.
absl::Status SaveCheckpoint(ZeroEngine& engine, Communicator& comm, const std::string& dir,
                            const std::string& tag, const std::string& client_state,
                            const std::string& config_json, const SaveOptions& options = {},
                            SaveStats* stats = nullptr);

// Collective. Loads <dir>/<tag> (empty tag: the one <dir>/latest names) into `engine` and returns
// its client_state. A tag made by `zerorun ckpt import` (manifest kind "weights") loads as
// ImportWeights of its file at the manifest's last_step, with the manifest's client_state. At the
// saved world size and stage each rank reads its own shard whole (O_DIRECT where accepted) and
// checks its sha256; otherwise each rank reads only the byte ranges of the old shards it needs now
// (sizes checked; `zerorun ckpt verify` checks their sha256). NotFound when there is none; DataLoss
// naming the file when a shard disagrees with the manifest; FailedPrecondition naming the unit when
// the checkpoint is of another model.
absl::StatusOr<std::string> LoadCheckpoint(ZeroEngine& engine, Communicator& comm,
                                           const std::string& dir, const std::string& tag);

struct ImportReport {
  size_t tensors = 0;               // The model's tensors, all imported.
  bool adam = false;                // Adam's m and v came from the file too.
  std::vector<std::string> unused;  // The file's tensors the model has none of.
};

// The names of Adam's state of tensor `name` in an imported file (what `zerorun ckpt import` of
// a DeepSpeed checkpoint writes beside the fp32 masters).
inline std::string ExpAvgName(const std::string& name) { return "exp_avg:" + name; }
inline std::string ExpAvgSqName(const std::string& name) { return "exp_avg_sq:" + name; }

// Collective. Weights from a safetensors file (F32, BF16 or F16; what `zerorun ckpt
// consolidate` writes, or any file with tensors named "<unit>.<tensor>" in the model's shapes):
// every rank reads only the element ranges it owns. Where the file also holds Adam's state of
// every tensor (ExpAvgName / ExpAvgSqName) m and v are read too, else they start at zero; the
// engine's step becomes `step`. Every rank checks every name and shape before anything is read:
// FailedPrecondition naming the tensor when one is missing or shaped otherwise (or Adam's state
// is there for some tensors only), NotFound / DataLoss naming the file. After a failed read the
// engine's state is unspecified (as for LoadCheckpoint).
absl::StatusOr<ImportReport> ImportWeights(ZeroEngine& engine, Communicator& comm,
                                           const std::string& path, int64_t step = 0);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_CHECKPOINT_H_
