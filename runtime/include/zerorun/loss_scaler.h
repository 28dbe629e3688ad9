// fp16 loss scaling with DeepSpeed's semantics (deepspeed/runtime/fp16/loss_scaler.py): a static
// scale, or a dynamic one that halves on overflow (after `hysteresis` overflows) down to
// `min_scale` and doubles after `window` clean steps.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_LOSS_SCALER_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_LOSS_SCALER_H_

#include <cstdint>
#include <vector>

namespace zerorun {

// The "fp16" block of a DeepSpeed config, with its defaults.
struct LossScaleOptions {
  float loss_scale = 0;  // 0: dynamic; > 0: this static scale.
  int initial_scale_power = 16;
  int64_t window = 1000;  // loss_scale_window
  int hysteresis = 2;
  bool consecutive_hysteresis = false;
  float min_scale = 1;  // min_loss_scale
};

class LossScaler {
 public:
  // Disabled (scale 1, never changes): bf16 and fp32.
  LossScaler() = default;
  explicit LossScaler(const LossScaleOptions& options);

  float scale() const { return scale_; }
  bool dynamic() const { return dynamic_; }
  // Records one optimizer step: `overflow` when its gradients held an inf or NaN.
  void Update(bool overflow);

  // The whole state as numbers (for checkpoints), and back. Import returns false for a vector
  // that Export did not make.
  std::vector<double> Export() const;
  bool Import(const std::vector<double>& state);

 private:
  bool dynamic_ = false;
  float scale_ = 1;
  float min_scale_ = 1;
  int64_t window_ = 1000;
  int delayed_shift_ = 1;
  int cur_hysteresis_ = 1;
  bool consecutive_hysteresis_ = false;
  int64_t cur_iter_ = 0;
  int64_t last_overflow_iter_ = -1;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_LOSS_SCALER_H_
