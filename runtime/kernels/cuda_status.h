// The CUDA error -> absl::Status conversion every zr_cuda source shares (CUDA-only, internal).
#ifndef ZERORUN_RUNTIME_KERNELS_CUDA_STATUS_H_
#define ZERORUN_RUNTIME_KERNELS_CUDA_STATUS_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zerorun::cuda {

// Internal naming `what` and CUDA's error string; clears the sticky error so later calls are
// not poisoned.
inline absl::Status FromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

}  // namespace zerorun::cuda

#endif  // ZERORUN_RUNTIME_KERNELS_CUDA_STATUS_H_
