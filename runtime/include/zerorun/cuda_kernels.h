// Host entry points of the CUDA path (target zr_cuda, built only with ZR_WITH_CUDA).
// CUDA-free declarations: device pointers are plain float*, errors are absl::Status.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_CUDA_KERNELS_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_CUDA_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerorun/adamw.h"
#include "zerorun/dtype.h"

namespace zerorun::cuda {

// Number of visible CUDA devices; 0 when there is no driver or no GPU.
absl::StatusOr<int> DeviceCount();

// AdamW on device arrays (same arithmetic as AdamWStepReference), synchronous. With
// `working_bf16`, each updated fp32 master weight is also written there in bf16 (round to
// nearest even, FloatToBf16's rule): the mixed-precision write-back in the same pass.
// Returns Internal with the CUDA error string when a launch fails.
// With `stream` (a cudaStream_t): enqueued there, the launch's error only.
absl::Status AdamWStepDevice(const AdamWHyper& hyper, int64_t step, size_t num_elements,
                             float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                             uint16_t* working_bf16 = nullptr, void* stream = nullptr);

// The engine's element-wise kernels on device arrays (runtime/kernels/elementwise.cu). Without
// `stream` (a cudaStream_t) synchronous like AdamWStepDevice; with one, enqueued there (the
// result: the launch's error only; the stream's events report the rest).
// Each has a CPU reference it is tested against (tests/gpu/elementwise_kernel_test.cc).
// fp32 -> bf16 / fp16 rounded to nearest even (FromFloat's results; a NaN stays a NaN), and back
// (ToFloat's, exact). InvalidArgument for kFp32.
absl::Status FromFloatDevice(DType dtype, const float* in, uint16_t* out, size_t n,
                             void* stream = nullptr);
absl::Status ToFloatDevice(DType dtype, const uint16_t* in, float* out, size_t n,
                           void* stream = nullptr);
// Sum of (g[i] x pre)^2 in double, each term as the CPU Kernels' SumSquares takes it (fp32
// product, squared in double); the order of the additions differs from the CPU's (per block,
// then the blocks in order on the host): equal within 1e-12 relative. With `stream`: launched
// there and that stream drained (not the device) before the result is read.
absl::StatusOr<double> SumSquaresDevice(const float* g, size_t n, float pre,
                                        void* stream = nullptr);
// Whether every element is finite (the loss scaler's overflow check); `stream` as SumSquares'.
absl::StatusOr<bool> AllFiniteDevice(const float* x, size_t n, void* stream = nullptr);
// x[i] *= factor (gradient averaging and unscaling, clipping): the CPU's product, bit for bit.
absl::Status ScaleDevice(float* x, size_t n, float factor, void* stream = nullptr);
// acc[i] += in[i] into an fp32 accumulator, or a bf16/fp16 one (`acc_dtype`) widened, added in
// fp32 and rounded to nearest even (AddFloatInto's results).
absl::Status AccumulateDevice(DType acc_dtype, const float* in, void* acc, size_t n,
                              void* stream = nullptr);
// `bytes` from device memory to device memory: synchronous, or enqueued on `stream`.
absl::Status CopyBytesDevice(const void* src, void* dst, size_t bytes, void* stream = nullptr);

// Copies `num_elements` floats host <-> device; Alloc/Free wrap cudaMalloc/cudaFree.
absl::StatusOr<float*> Alloc(size_t num_elements);
absl::StatusOr<uint16_t*> AllocHalves(size_t num_elements);
absl::Status Free(void* device_ptr);
absl::Status CopyHalvesToHost(const uint16_t* device, uint16_t* host, size_t num_elements);
absl::Status CopyToDevice(const float* host, float* device, size_t num_elements);
absl::Status CopyToHost(const float* device, float* host, size_t num_elements);

// Device-to-device copy (synchronous), a device-wide sync, and device 0's name.
absl::Status CopyDeviceToDevice(const float* src, float* dst, size_t num_elements);
absl::Status Synchronize();
absl::StatusOr<std::string> DeviceName();

// NCCL version linked into this build, e.g. "2.28.3" (ncclGetVersion).
absl::StatusOr<std::string> NcclVersion();

// A one-process NCCL communicator over every visible GPU (ncclCommInitAll) all-reduces (sum)
// `num_elements` floats that hold device index + 1 on each device; returns every device's
// result, concatenated (each element should be D(D+1)/2). The GPU smoke test of the NCCL path.
absl::StatusOr<std::vector<float>> NcclAllReduceSmoke(size_t num_elements);

}  // namespace zerorun::cuda

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_CUDA_KERNELS_H_
