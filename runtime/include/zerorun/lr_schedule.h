// DeepSpeed's learning-rate schedulers (deepspeed.runtime.lr_schedules): WarmupLR,
// WarmupDecayLR and WarmupCosineLR, as a pure function of the step.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_LR_SCHEDULE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_LR_SCHEDULE_H_

#include <cstdint>

namespace zerorun {

struct LrSchedule {
  enum class Kind { kConstant, kWarmupLR, kWarmupDecayLR, kWarmupCosineLR };
  Kind kind = Kind::kConstant;
  float base_lr = 1e-3f;        // optimizer.params.lr (constant, and WarmupCosineLR's scale)
  float warmup_min_lr = 0;      // WarmupLR / WarmupDecayLR
  float warmup_max_lr = 1e-3f;  // WarmupLR / WarmupDecayLR
  int64_t warmup_num_steps = 1000;
  bool log_warmup = true;       // warmup_type "log" (DeepSpeed's default) or "linear"
  int64_t total_num_steps = 0;  // WarmupDecayLR / WarmupCosineLR
  float warmup_min_ratio = 0;   // WarmupCosineLR
  float cos_min_ratio = 1e-4f;  // WarmupCosineLR

  // The learning rate of optimizer step `step` (1-based) as DeepSpeed's engine runs it: its
  // scheduler is stepped after each optimizer step, so step n runs at last_batch_iteration n - 2
  // (step 1 at -1: warmup_min_lr, or 0 for WarmupCosineLR); warmups last at least 2 iterations.
  float At(int64_t step) const;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_LR_SCHEDULE_H_
