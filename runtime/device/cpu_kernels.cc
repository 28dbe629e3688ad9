// The CPU kernels (zerorun/kernels.h): the reference every other device's are tested against,
// and what the engine runs on host buffers. The loops are the engine's own arithmetic, moved
// here unchanged (-O3: they vectorize), so results stay bit-identical.
#include <algorithm>
#include <cmath>

#include "zerorun/dtype.h"
#include "zerorun/kernels.h"

namespace zerorun {
namespace {

float* Floats(const BufferView& v) { return static_cast<float*>(v.data); }
uint16_t* Halves(const BufferView& v) { return static_cast<uint16_t*>(v.data); }

class CpuKernels final : public Kernels {
 public:
  Device device() const override { return Device::Cpu(); }

 protected:
  absl::Status DoScale(BufferView x, float factor, Stream* stream) override {
    return Run(stream, [x, factor] {
      float* __restrict g = Floats(x);
      for (size_t i = 0; i < x.count; ++i) g[i] *= factor;
    });
  }
  absl::StatusOr<double> DoSumSquares(BufferView x, float pre, Stream*) override {
    const float* __restrict g = Floats(x);
    double sum = 0;
    for (size_t i = 0; i < x.count; ++i) {
      const float v = g[i] * pre;
      sum += static_cast<double>(v) * v;
    }
    return sum;
  }
  absl::StatusOr<bool> DoAllFinite(BufferView x, Stream*) override {
    const float* g = Floats(x);
    bool finite = true;
    for (size_t i = 0; i < x.count; ++i) finite &= std::isfinite(g[i]);
    return finite;
  }
  absl::Status DoConvert(BufferView in, BufferView out, Stream* stream) override {
    return Run(stream, [in, out] {
      if (in.dtype == out.dtype) {
        std::copy_n(static_cast<const char*>(in.data), in.bytes(), static_cast<char*>(out.data));
      } else if (in.dtype == DType::kFp32) {
        FromFloat(out.dtype, Floats(in), Halves(out), in.count);
      } else {
        ToFloat(in.dtype, Halves(in), Floats(out), in.count);
      }
    });
  }
  absl::Status DoAccumulate(BufferView in, BufferView acc, Stream* stream) override {
    return Run(stream, [in, acc] {
      if (acc.dtype == DType::kFp32) {
        const float* __restrict a = Floats(in);
        float* __restrict b = Floats(acc);
        for (size_t i = 0; i < in.count; ++i) b[i] += a[i];
      } else {
        AddFloatInto(acc.dtype, Floats(in), Halves(acc), in.count);
      }
    });
  }

 private:
  // `work` now, or as a task of `stream`.
  template <typename F>
  static absl::Status Run(Stream* stream, F work) {
    if (stream == nullptr) {
      work();
    } else {
      stream->Enqueue([work] {
        work();
        return absl::OkStatus();
      });
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<Kernels> CreateCpuKernels() { return std::make_unique<CpuKernels>(); }

}  // namespace zerorun
