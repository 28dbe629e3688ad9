// zerorun::pyext::TorchEngine: libzerorun's ZeroEngine for zerorun.torch behind an interface of
// standard types only (no absl, no Python), built as the shared library libzerorun_torch.so.
// The Python module (module.cc, nanobind) is the only part compiled against a Python version, so
// a machine with another Python (the GPU machine's) builds that one file against this library.
//
// Threads: one thread drives an engine (the one that made it), as ZeroEngine's contract asks.
// Errors are thrown as Error, whose kind says which Python exception it becomes; after an error
// the engine is as ZeroEngine's call left it. A Flat view lives as the engine says: acquire's
// until the unit is released (stage 3) or for the engine's life (stages 0-2), a gradient slot
// until grads_ready, every one until close.
#ifndef ZERORUN_PYTHON_EXT_TORCH_ENGINE_H_
#define ZERORUN_PYTHON_EXT_TORCH_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace zerorun::pyext {

enum class ErrorKind { kValue, kNotFound, kRuntime };  // ValueError, FileNotFoundError, other.

struct Error : std::runtime_error {
  Error(ErrorKind k, const std::string& what) : std::runtime_error(what), kind(k) {}
  ErrorKind kind;
};

enum class FlatType { kFp32, kBf16, kFp16 };

// `count` elements of `type` at `data` in host memory, owned by the engine.
struct Flat {
  void* data = nullptr;
  size_t count = 0;
  FlatType type = FlatType::kFp32;
};

// (unit name, [(tensor name, shape, weight decay or -1 for the optimizer's)]).
using UnitArg =
    std::pair<std::string, std::vector<std::tuple<std::string, std::vector<int64_t>, float>>>;

struct StepOut {
  double grad_norm = 0, clip_coef = 1;
  bool skipped = false;
  double loss_scale = 1, mean_value = 0;
};

struct MemoryOut {  // Bytes (MemoryReport's fields).
  size_t params = 0, master = 0, grads = 0, optimizer = 0, scratch = 0, live = 0, allocated = 0,
         peak = 0, nvme = 0;
};

class __attribute__((visibility("default"))) TorchEngine {
 public:
  // Joins the job (InitFromEnv: zerorun's rendezvous, or a single process), reads the effective
  // config from `config_path` (ZERORUN_CONFIG under zerorun wins unless config_path_wins: a
  // config the program handed initialize itself), and builds the engine over `units` with
  // widening off: torch binds the working dtype. `adam` ({beta1, beta2, eps, weight_decay}, or
  // empty for the config's) comes from a torch optimizer's hyper-parameters.
  TorchEngine(const std::string& config_path, const std::vector<UnitArg>& units,
              const std::vector<float>& adam, bool config_path_wins);
  ~TorchEngine();
  TorchEngine(const TorchEngine&) = delete;
  TorchEngine& operator=(const TorchEngine&) = delete;

  int rank() const;
  int world_size() const;
  int local_rank() const;
  int stage() const;
  std::string dtype() const;  // "fp32", "bf16", "fp16"
  int accumulation_steps() const;
  float clipping() const;
  int micro_batch() const;
  bool overlap_comm() const;
  std::string config_json() const;
  const std::vector<std::string>& notes() const;
  float lr_at(int64_t step) const;
  float loss_scale() const;
  int64_t last_step() const;

  // [(offset, numel)] of the unit's tensors in its flat buffer (and gradient slot).
  std::vector<std::pair<size_t, size_t>> offsets(size_t unit) const;
  // Broadcasts `count` floats from `root` in place (a collective; root -1: none, every rank
  // passes the same values), then sets the tensor's masters and working weights.
  void set_tensor(size_t unit, size_t tensor, float* values, size_t count, int root);
  // Adam's m and v of a tensor from their full values (every rank passes the same).
  void set_adam(size_t unit, size_t tensor, const float* m, const float* v, size_t count);
  void finish_restore(int64_t step);  // Collective: ends an import at optimizer step `step`.
  void get_tensor(size_t unit, size_t tensor, float* out);  // Full fp32 values (collective).

  Flat acquire(size_t unit, bool backward);  // The unit's flat working weights (stage 3: gathered).
  void release(size_t unit);
  void keep_for_backward(size_t unit, bool keep);
  Flat grads(size_t unit);  // The unit's gradient slot: add into it, then grads_ready.
  void grads_ready(size_t unit);
  // The optimizer step; under zerorun it is reported to `zerorun status` (`tokens`: this rank's
  // since the last step).
  StepOut step(int64_t step, float lr, float value, double tokens);
  void sync();
  MemoryOut memory() const;
  std::vector<std::string> take_notices();
  // Ends the engine now: its memory, threads and swap files go, every Flat dangles; later calls
  // throw (kRuntime).
  void close();
  // libzerorun's checkpoints (collective; between steps). `frozen`: rank 0's safetensors bytes
  // of the parameters the engine does not train.
  void save_checkpoint(const std::string& dir, const std::string& tag,
                       const std::string& client_state, const std::string& frozen);
  // The saved client_state; kNotFound when there is no checkpoint.
  std::string load_checkpoint(const std::string& dir, const std::string& tag);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace zerorun::pyext

#endif  // ZERORUN_PYTHON_EXT_TORCH_ENGINE_H_
