// GetBuildInfo / CudaDeviceCount: the one place outside CUDA targets that knows ZR_WITH_CUDA.
#include "zerorun/build_info.h"

#include "base/version.h"
#if ZR_WITH_CUDA
#include "zerorun/cuda_kernels.h"
#endif

namespace zerorun {

BuildInfo GetBuildInfo() {
  BuildInfo info;
  info.version = ZR_VERSION;
#if ZR_WITH_CUDA
  info.with_cuda = true;
  absl::StatusOr<std::string> nccl = cuda::NcclVersion();
  info.nccl_version = nccl.ok() ? *nccl : "unknown";
#endif
  return info;
}

absl::StatusOr<int> CudaDeviceCount() {
#if ZR_WITH_CUDA
  return cuda::DeviceCount();
#else
  return absl::UnimplementedError(
      "the CUDA path is not in this build; reconfigure with -DZR_WITH_CUDA=ON");
#endif
}

}  // namespace zerorun
