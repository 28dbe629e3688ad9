// AdamW on a CUDA stream behind the engine's Optimizer interface (builds with CUDA): the AdamW
// kernel (kernels/adamw.cu), checked against the CPU reference in tests/gpu.
#include "absl/strings/str_cat.h"
#include "zerorun/cuda_kernels.h"
#include "zerorun/device.h"
#include "zerorun/optimizer.h"

namespace zerorun {
namespace {

class CudaAdamW final : public Optimizer {
 public:
  CudaAdamW(const AdamWHyper& hyper, Stream& stream) : hyper_(hyper), stream_(stream) {}
  const char* name() const override { return "AdamW (cuda)"; }
  void Step(int64_t step, float lr, float weight_decay, size_t n, float* master, const float* grad,
            float* m, float* v) override {
    const AdamWHyper hyper = hyper_.ForStep(lr, weight_decay);
    stream_.Enqueue([=, this] {
      return cuda::AdamWStepDevice(hyper, step, n, master, grad, m, v, nullptr, stream_.native());
    });
  }

 private:
  const AdamWHyper hyper_;
  Stream& stream_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> CreateCudaAdamW(const AdamWHyper& hyper,
                                                           Stream& stream) {
  if (stream.device().kind != DeviceKind::kCuda) {
    return absl::InvalidArgumentError(
        absl::StrCat("AdamW on CUDA runs on a CUDA stream, not on ", stream.device().ToString()));
  }
  return std::make_unique<CudaAdamW>(hyper, stream);
}

}  // namespace zerorun
