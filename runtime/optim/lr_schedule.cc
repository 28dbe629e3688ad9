// LrSchedule::At, following deepspeed/runtime/lr_schedules.py's gamma and ratio formulas.
#include "zerorun/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace zerorun {
namespace {

// Warmup progress in [0, 1) for iteration i < warmup steps (WarmupLR._get_gamma).
double WarmupGamma(const LrSchedule& s, int64_t warmup, int64_t i) {
  if (s.log_warmup) {
    return std::log(static_cast<double>(i + 1)) / std::log(static_cast<double>(warmup));
  }
  return static_cast<double>(i) / static_cast<double>(warmup);
}

}  // namespace

float LrSchedule::At(int64_t step) const {
  // DeepSpeed's engine steps its scheduler after each optimizer step, from iteration -1: step n
  // runs at iteration n - 2 (-1: the value the scheduler set when it was made).
  const int64_t i = step - 2;
  const int64_t warmup_num_steps = std::max<int64_t>(2, this->warmup_num_steps);
  switch (kind) {
    case Kind::kConstant:
      return base_lr;
    case Kind::kWarmupLR:
    case Kind::kWarmupDecayLR: {
      if (i < 0) return warmup_min_lr;
      double gamma = 1.0;
      if (i < warmup_num_steps) {
        gamma = WarmupGamma(*this, warmup_num_steps, i);
      } else if (kind == Kind::kWarmupDecayLR) {
        gamma = std::max(0.0, static_cast<double>(total_num_steps - i) /
                                  std::max<double>(1.0, total_num_steps - warmup_num_steps));
      }
      return static_cast<float>(warmup_min_lr + (warmup_max_lr - warmup_min_lr) * gamma);
    }
    case Kind::kWarmupCosineLR: {
      if (i < 0) return 0.0f;  // DeepSpeed's get_lr before the first scheduler step.
      double ratio;
      if (i < warmup_num_steps) {
        ratio =
            warmup_min_ratio + WarmupGamma(*this, warmup_num_steps, i) * (1.0 - warmup_min_ratio);
      } else {
        const double done = static_cast<double>(i - warmup_num_steps + 1);
        const double total = static_cast<double>(total_num_steps - warmup_num_steps);
        const double cosine = (1.0 + std::cos(M_PI * done / total)) / 2.0;
        ratio = std::max(0.0, cos_min_ratio + (1.0 - cos_min_ratio) * cosine);
      }
      return static_cast<float>(base_lr * ratio);
    }
  }
  return base_lr;
}

}  // namespace zerorun
