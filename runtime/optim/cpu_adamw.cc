// The CPU AdamW behind the engine's Optimizer interface (the reference loop, vectorised).
#include "zerorun/optimizer.h"

namespace zerorun {
namespace {

class CpuAdamW final : public Optimizer {
 public:
  explicit CpuAdamW(const AdamWHyper& hyper) : hyper_(hyper) {}
  const char* name() const override { return "AdamW (cpu)"; }
  void Step(int64_t step, float lr, float weight_decay, size_t n, float* master, const float* grad,
            float* m, float* v) override {
    AdamWStepReference(hyper_.ForStep(lr, weight_decay), step, n, master, grad, m, v);
  }

 private:
  const AdamWHyper hyper_;
};

}  // namespace

std::unique_ptr<Optimizer> CreateCpuAdamW(const AdamWHyper& hyper) {
  return std::make_unique<CpuAdamW>(hyper);
}

}  // namespace zerorun
