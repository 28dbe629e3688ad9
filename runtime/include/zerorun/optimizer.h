// The optimizer the ZeRO engine runs on each chunk of a rank's fp32 state (StateStore): an
// element-wise update, so the result does not depend on how the state is cut into chunks or
// where the chunk came from (memory or NVMe). AdamW on the CPU, and on a CUDA stream (builds with
// CUDA) behind the same interface, checked against the CPU reference (adamw.h).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_OPTIMIZER_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "zerorun/adamw.h"

namespace zerorun {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual const char* name() const = 0;
  // One step at 1-based `step` with learning rate `lr` and weight decay `weight_decay` (< 0: the
  // optimizer's own) over `n` elements, in place: `master` updated from `grad` (read only) with
  // its state `m` and `v`. Pure computation on the caller's thread; the arrays are the caller's
  // for the call only.
  virtual void Step(int64_t step, float lr, float weight_decay, size_t n, float* master,
                    const float* grad, float* m, float* v) = 0;
};

// torch.optim.AdamW (foreach=False) on the CPU: AdamWStepReference with `hyper` (its lr ignored:
// Step's is used; its weight_decay where Step's is negative).
std::unique_ptr<Optimizer> CreateCpuAdamW(const AdamWHyper& hyper);

class Stream;
// The same update as a CUDA kernel (AdamWStepDevice) enqueued on `stream` (a CUDA stream that
// outlives the optimizer): Step's arrays are device memory that must stay valid until the stream
// passes the step (an event); Step returns at once, a launch error sticks on the stream.
// Unimplemented in a build without CUDA.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateCudaAdamW(const AdamWHyper& hyper, Stream& stream);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_OPTIMIZER_H_
