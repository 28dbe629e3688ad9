// The NCCL call site of the CUDA build: which NCCL is linked. The NCCL backend grows here.
#include <nccl.h>

#include "absl/strings/str_cat.h"
#include "zerorun/cuda_kernels.h"

namespace zerorun::cuda {

absl::StatusOr<std::string> NcclVersion() {
  int code = 0;
  const ncclResult_t result = ncclGetVersion(&code);
  if (result != ncclSuccess) {
    return absl::InternalError(absl::StrCat("ncclGetVersion: ", ncclGetErrorString(result)));
  }
  // NCCL >= 2.9 encodes MAJOR*10000 + MINOR*100 + PATCH.
  return absl::StrCat(code / 10000, ".", (code % 10000) / 100, ".", code % 100);
}

}  // namespace zerorun::cuda
