// The element-wise work ZeroEngine runs on its own buffers: gradient averaging, unscaling and
// clipping (Scale), the squared norm (SumSquares), the loss scaler's overflow check (AllFinite),
// casts between the working dtype and fp32 (Convert) and gradient accumulation (Accumulate).
// One interface, one implementation per device kind: the CPU's (device/cpu_kernels.cc) is the
// reference, CUDA's (device/cuda_kernels.cc over kernels/elementwise.cu) is tested against it
// (tests/gpu/elementwise_kernel_test.cc). The engine's gradient and step paths call these
// instead of looping over its buffers, so that where those live is a matter of which Kernels it
// holds (the value import/export paths, zero_values.cc, still touch host memory directly).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_KERNELS_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_KERNELS_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerorun/device.h"

namespace zerorun {

// Every call checks its arguments here, once for every device (on this device, the dtypes it
// names, equal counts, a stream of this device) and returns InvalidArgument naming the call and
// the view otherwise, touching nothing; then the device's implementation runs. With `stream`
// nullptr a call is synchronous on the calling thread; with one it is enqueued there (CPU: as a
// task; CUDA: launched on native()) and its errors surface from the stream, while SumSquares
// and AllFinite, whose result is a host value, wait for the stream first.
// Thread-safety: a Kernels holds no state; any thread may call, a stream only from its owner.
// Views must stay valid until the call returns (no stream) or the stream has run the work.
class Kernels {
 public:
  virtual ~Kernels() = default;
  virtual Device device() const = 0;

  // x[i] *= factor (fp32): the product rounded once, the same bits on every device.
  absl::Status Scale(BufferView x, float factor, Stream* stream = nullptr);
  // The sum of (x[i] * pre)^2 (fp32 x): each product in fp32, squared and added in double. The
  // CPU adds in index order; other devices in their own order (equal within 1e-12 relative).
  absl::StatusOr<double> SumSquares(BufferView x, float pre, Stream* stream = nullptr);
  // Whether every element of x (fp32) is finite.
  absl::StatusOr<bool> AllFinite(BufferView x, Stream* stream = nullptr);
  // out = in in out's dtype (fp32 <-> bf16/fp16, round to nearest even as FromFloat; the same
  // dtype: a copy; bf16 <-> fp16 is refused). Same count; in and out do not overlap.
  absl::Status Convert(BufferView in, BufferView out, Stream* stream = nullptr);
  // acc[i] += in[i]: fp32 `in` into an fp32 accumulator, or into a 16-bit one widened, added in
  // fp32 and rounded back (AddFloatInto). Same count; no overlap.
  absl::Status Accumulate(BufferView in, BufferView acc, Stream* stream = nullptr);

 protected:
  // The device's work, called with checked arguments and a non-empty view.
  virtual absl::Status DoScale(BufferView x, float factor, Stream* stream) = 0;
  virtual absl::StatusOr<double> DoSumSquares(BufferView x, float pre, Stream* stream) = 0;
  virtual absl::StatusOr<bool> DoAllFinite(BufferView x, Stream* stream) = 0;
  virtual absl::Status DoConvert(BufferView in, BufferView out, Stream* stream) = 0;
  virtual absl::Status DoAccumulate(BufferView in, BufferView acc, Stream* stream) = 0;
};

// The CPU kernels (the reference); host views only.
std::unique_ptr<Kernels> CreateCpuKernels();
// The CUDA kernels on CUDA device `index` (views on that device only); Unimplemented naming the
// fix in a build without CUDA. Without a stream a call runs on the legacy default stream and
// synchronizes the device.
absl::StatusOr<std::unique_ptr<Kernels>> CreateCudaKernels(int index);
// The kernels of `device`'s kind.
absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(Device device);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_KERNELS_H_
