// The CUDA kernels (zerorun/kernels.h) over kernels/elementwise.cu (builds with CUDA): each call
// launches on its stream's native() (through Stream::Enqueue, so a failure sticks to the stream)
// or, without a stream, runs synchronously. tests/gpu/elementwise_kernel_test.cc checks every one
// against the CPU kernels.
#include "zerorun/cuda_kernels.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_status.h"
#include "zerorun/kernels.h"

namespace zerorun {
namespace {

float* Floats(const BufferView& v) { return static_cast<float*>(v.data); }
uint16_t* Halves(const BufferView& v) { return static_cast<uint16_t*>(v.data); }

class CudaKernels final : public Kernels {
 public:
  explicit CudaKernels(int index) : index_(index) {}
  Device device() const override { return Device::Cuda(index_); }

 protected:
  absl::Status DoScale(BufferView x, float factor, Stream* stream) override {
    return Run(stream, [=](void* on) { return cuda::ScaleDevice(Floats(x), x.count, factor, on); });
  }
  absl::StatusOr<double> DoSumSquares(BufferView x, float pre, Stream* stream) override {
    return Bound([&] { return cuda::SumSquaresDevice(Floats(x), x.count, pre, Native(stream)); });
  }
  absl::StatusOr<bool> DoAllFinite(BufferView x, Stream* stream) override {
    return Bound([&] { return cuda::AllFiniteDevice(Floats(x), x.count, Native(stream)); });
  }
  absl::Status DoConvert(BufferView in, BufferView out, Stream* stream) override {
    return Run(stream, [=](void* on) {
      if (in.dtype == out.dtype) return cuda::CopyBytesDevice(in.data, out.data, in.bytes(), on);
      if (in.dtype == DType::kFp32) {
        return cuda::FromFloatDevice(out.dtype, Floats(in), Halves(out), in.count, on);
      }
      return cuda::ToFloatDevice(in.dtype, Halves(in), Floats(out), in.count, on);
    });
  }
  absl::Status DoAccumulate(BufferView in, BufferView acc, Stream* stream) override {
    return Run(stream, [=](void* on) {
      return cuda::AccumulateDevice(acc.dtype, Floats(in), acc.data, in.count, on);
    });
  }

 private:
  static void* Native(Stream* stream) { return stream == nullptr ? nullptr : stream->native(); }

  // `call` with this device current (the calling thread's device is put back after).
  template <typename F>
  auto Bound(F call) -> decltype(call()) {
    int before = 0;
    if (absl::Status s = cuda::FromCuda(cudaGetDevice(&before), "cudaGetDevice"); !s.ok()) return s;
    if (before != index_) {
      if (absl::Status s = cuda::FromCuda(cudaSetDevice(index_), "cudaSetDevice"); !s.ok()) {
        return s;
      }
    }
    auto result = call();
    if (before != index_) static_cast<void>(cudaSetDevice(before));
    return result;
  }

  // `launch(native stream)` as a task of `stream`, or synchronously without one.
  template <typename F>
  absl::Status Run(Stream* stream, F launch) {
    if (stream == nullptr) return Bound([&] { return launch(nullptr); });
    stream->Enqueue([stream, launch] { return launch(stream->native()); });  // On its device.
    return absl::OkStatus();
  }

  const int index_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Kernels>> CreateCudaKernels(int index) {
  int count = 0;
  if (absl::Status s = cuda::FromCuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount"); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA kernels on cuda:", index, ": ", s.message()));
  }
  if (index < 0 || index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA kernels on cuda:", index, ": ", count, " CUDA device(s) visible"));
  }
  return std::make_unique<CudaKernels>(index);
}

}  // namespace zerorun
