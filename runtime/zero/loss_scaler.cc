// LossScaler: DynamicLossScaler.update_scale of DeepSpeed, step for step.
#include "zerorun/loss_scaler.h"

#include <algorithm>
#include <cmath>

namespace zerorun {

LossScaler::LossScaler(const LossScaleOptions& options) {
  dynamic_ = options.loss_scale == 0;
  scale_ = dynamic_ ? std::ldexp(1.0f, options.initial_scale_power) : options.loss_scale;
  min_scale_ = options.min_scale;
  window_ = options.window;
  delayed_shift_ = options.hysteresis;
  cur_hysteresis_ = options.hysteresis;
  consecutive_hysteresis_ = options.consecutive_hysteresis;
}

void LossScaler::Update(bool overflow) {
  if (!dynamic_) return;
  if (overflow) {
    if (delayed_shift_ == 1 || cur_hysteresis_ == 1) {
      scale_ = std::max(scale_ / 2, min_scale_);
    } else {
      --cur_hysteresis_;
    }
    last_overflow_iter_ = cur_iter_;
  } else {
    if (consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
    if ((cur_iter_ - last_overflow_iter_) % window_ == 0) {
      if (!consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
      scale_ *= 2;
    }
  }
  ++cur_iter_;
}

std::vector<double> LossScaler::Export() const {
  return {dynamic_ ? 1.0 : 0.0,
          scale_,
          min_scale_,
          static_cast<double>(window_),
          static_cast<double>(delayed_shift_),
          static_cast<double>(cur_hysteresis_),
          consecutive_hysteresis_ ? 1.0 : 0.0,
          static_cast<double>(cur_iter_),
          static_cast<double>(last_overflow_iter_)};
}

bool LossScaler::Import(const std::vector<double>& s) {
  if (s.size() != 9) return false;
  dynamic_ = s[0] != 0;
  scale_ = static_cast<float>(s[1]);
  min_scale_ = static_cast<float>(s[2]);
  window_ = static_cast<int64_t>(s[3]);
  delayed_shift_ = static_cast<int>(s[4]);
  cur_hysteresis_ = static_cast<int>(s[5]);
  consecutive_hysteresis_ = s[6] != 0;
  cur_iter_ = static_cast<int64_t>(s[7]);
  last_overflow_iter_ = static_cast<int64_t>(s[8]);
  return true;
}

}  // namespace zerorun
