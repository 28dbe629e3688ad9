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

namespace zerorun::cuda {

// Number of visible CUDA devices; 0 when there is no driver or no GPU.
absl::StatusOr<int> DeviceCount();

// AdamW on device arrays (same arithmetic as AdamWStepReference), synchronous. With
// `working_bf16`, each updated fp32 master weight is also written there in bf16 (round to
// nearest even, FloatToBf16's rule): the mixed-precision write-back in the same pass.
// Returns Internal with the CUDA error string when a launch fails.
absl::Status AdamWStepDevice(const AdamWHyper& hyper, int64_t step, size_t num_elements,
                             float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                             uint16_t* working_bf16 = nullptr);

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
