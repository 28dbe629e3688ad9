// The ZeRO engine for stages 0-2 with fp32 working weights (CPU ranks): parameters, gradients
// and AdamW state laid out by partition.h, gradients averaged over ranks and micro-steps,
// clipped by the global norm, and the optimizer run on each rank's shard.
//   stage 0: full grads, all-reduce, replicated AdamW            -> 16P bytes per rank
//   stage 1: full grads, reduce-scatter, sharded AdamW, gather    ->  8P + 8P/N
//   stage 2: grads reduce-scattered per unit as GradsReady() is
//            called, into an fp32 shard accumulator               ->  4P + 12P/N (+ scratch)
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_ZERO_ENGINE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_ZERO_ENGINE_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "zerorun/adamw.h"
#include "zerorun/comm.h"
#include "zerorun/partition.h"

namespace zerorun {

struct ZeroOptions {
  int stage = 2;  // 0, 1 or 2 (3 comes with issue #5).
  AdamWHyper adam;
  float gradient_clipping = 0;  // Max global norm; 0 disables (DeepSpeed's default is 1.0).
  int gradient_accumulation_steps = 1;
  size_t align = 16;      // Elements; tensor starts and shard sizes are multiples of it.
  size_t grad_slots = 2;  // Stage 2: unit-sized gradient scratch buffers in flight.
};

struct StepResult {
  float grad_norm = 0;  // Global norm of the averaged gradient, before clipping.
  float clip_coef = 1;  // What the gradient was multiplied by.
};

// Bytes this rank holds for model states (the ZeRO paper's accounting, padding included).
struct MemoryReport {
  size_t params = 0;     // Full working parameters.
  size_t grads = 0;      // Full gradient buffers (stages 0/1) or the shard accumulator (2).
  size_t optimizer = 0;  // Adam m and v (fp32 weights are the parameters themselves).
  size_t scratch = 0;    // Stage 2 gradient slots.
  size_t total() const { return params + grads + optimizer + scratch; }
};

class ZeroEngine;

// Scoped access to one unit's full parameters for a forward or backward pass (acquire ...
// release). Stages 0-2 keep every unit resident, so acquiring only records the order; stage 3
// (issue #5) will gather the unit here and release it when the last guard ends. Guards nest and
// may be taken twice for one unit (tied weights). Movable, not copyable.
class UnitGuard {
 public:
  UnitGuard(UnitGuard&& other) noexcept;
  UnitGuard& operator=(UnitGuard&&) = delete;
  UnitGuard(const UnitGuard&) = delete;
  ~UnitGuard();

  size_t unit() const { return unit_; }
  // The unit's tensors, in registration order; valid while the guard lives.
  float* tensor(size_t index) const;
  std::vector<float*> tensors() const;

 private:
  friend class ZeroEngine;
  UnitGuard(ZeroEngine* engine, size_t unit) : engine_(engine), unit_(unit) {}
  ZeroEngine* engine_;
  size_t unit_;
};

enum class Pass { kForward, kBackward };

class ZeroEngine {
 public:
  // InvalidArgument for a stage outside 0-2, gradient_accumulation_steps < 1 or a bad layout.
  // `comm` must outlive the engine; every rank must pass the same units and options.
  static absl::StatusOr<std::unique_ptr<ZeroEngine>> Create(const std::vector<UnitSpec>& units,
                                                            const ZeroOptions& options,
                                                            Communicator* comm);

  const Layout& layout() const { return layout_; }
  const ZeroOptions& options() const { return options_; }

  // The full working parameters of `unit` (layout().units()[unit].padded floats; tensors at
  // their offsets). Valid for the engine's life; identical on every rank after Step().
  float* Params(size_t unit);
  float* Tensor(size_t unit, size_t tensor);

  // Acquires `unit` for `pass` (see UnitGuard). InvalidArgument for an unknown unit. The order
  // of the first step's acquires is recorded (acquire_order()) so that stage 3 can prefetch
  // along it and check it is the same on every rank.
  absl::StatusOr<UnitGuard> Acquire(size_t unit, Pass pass);
  const std::vector<std::pair<size_t, Pass>>& acquire_order() const { return acquire_order_; }
  // Guards currently alive for `unit` (refcount).
  int live_guards(size_t unit) const { return live_guards_[unit]; }

  // The buffer the backward pass adds `unit`'s gradients into (same offsets as Params()).
  // Stages 0/1: persistent, accumulating over micro-steps. Stage 2: a zeroed scratch slot taken
  // from a pool at the first call per micro-step; ResourceExhausted when all slots are in use.
  absl::StatusOr<float*> Grads(size_t unit);

  // Declares `unit`'s gradients of this micro-step complete. Stage 2 reduce-scatters them into
  // the shard accumulator and returns the slot; stages 0/1 defer communication to Step().
  absl::Status GradsReady(size_t unit);

  // Ends the optimizer step: averages the gradients over ranks and micro-steps, computes the
  // global norm, clips, runs AdamW at step number `step` (1-based) on this rank's shard with
  // `lr`, gathers the parameters, and zeroes the gradients. FailedPrecondition when a stage 2
  // unit's gradients were taken but not marked ready.
  absl::StatusOr<StepResult> Step(int64_t step, float lr);

  MemoryReport Memory() const;

 private:
  ZeroEngine(Layout layout, const ZeroOptions& options, Communicator* comm);
  absl::StatusOr<float> GlobalNorm();
  friend class UnitGuard;
  void Release(size_t unit) { --live_guards_[unit]; }

  Layout layout_;
  const ZeroOptions options_;
  Communicator* comm_;
  std::vector<std::vector<float>> params_;   // Per unit, full.
  std::vector<std::vector<float>> grads_;    // Stages 0/1: per unit, full.
  std::vector<float> grad_shard_;            // Stage 2: dense accumulator (state_size()).
  std::vector<float> exp_avg_, exp_avg_sq_;  // Dense (state_size(), or padded for stage 0).
  std::vector<std::vector<float>> slots_;    // Stage 2 scratch.
  std::vector<int> slot_of_unit_;            // -1 when the unit holds no slot.
  std::vector<int> live_guards_;
  std::vector<std::pair<size_t, Pass>> acquire_order_;  // During the first step only.
  bool first_step_done_ = false;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_ZERO_ENGINE_H_
