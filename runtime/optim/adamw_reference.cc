// CPU reference AdamW: the exact operation order of torch.optim.AdamW's single-tensor path.
#include <cmath>

#include "base/cpu_clones.h"
#include "zerorun/adamw.h"

namespace zerorun {

// AVX2 clone where the CPU has it (8-wide sqrt/div); "avx2" does not enable FMA, so both clones
// round exactly like the scalar formula.
ZR_CPU_CLONES void AdamWStepReference(const AdamWHyper& hyper, int64_t step, size_t num_elements,
                                      float* param, const float* grad, float* exp_avg,
                                      float* exp_avg_sq) {
  // PyTorch computes the bias corrections in double precision (Python floats), then rounds.
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(hyper.beta1), step);
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(hyper.beta2), step);
  const float step_size = static_cast<float>(hyper.lr / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float decay = 1.0f - hyper.lr * hyper.weight_decay;
  for (size_t i = 0; i < num_elements; ++i) {
    const float g = grad[i];
    param[i] *= decay;
    exp_avg[i] += (g - exp_avg[i]) * (1.0f - hyper.beta1);  // torch lerp_
    exp_avg_sq[i] = exp_avg_sq[i] * hyper.beta2 + (1.0f - hyper.beta2) * g * g;
    const float denom = std::sqrt(exp_avg_sq[i]) / bias_correction2_sqrt + hyper.eps;
    param[i] -= step_size * (exp_avg[i] / denom);
  }
}

}  // namespace zerorun
