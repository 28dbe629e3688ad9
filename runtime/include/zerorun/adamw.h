// AdamW as PyTorch computes it (torch.optim.AdamW, foreach=False), on fp32 arrays.
// The CPU version is the reference every other implementation (CUDA, sharded) is tested against.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_ADAMW_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_ADAMW_H_

#include <cstddef>
#include <cstdint>

namespace zerorun {

struct AdamWHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;

  // These with one Optimizer::Step's learning rate and, when >= 0, its weight decay.
  AdamWHyper ForStep(float step_lr, float step_weight_decay) const {
    AdamWHyper h = *this;
    h.lr = step_lr;
    if (step_weight_decay >= 0) h.weight_decay = step_weight_decay;
    return h;
  }
};

// One AdamW step at 1-based `step` over `num_elements` parameters, in place:
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
// Requires step >= 1 and four arrays of num_elements each; `grad` is read only.
void AdamWStepReference(const AdamWHyper& hyper, int64_t step, size_t num_elements, float* param,
                        const float* grad, float* exp_avg, float* exp_avg_sq);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_ADAMW_H_
