// What this libzerorun was built with, and what the CUDA path finds at run time.
// CUDA-free: callable from every build; the CUDA facts are empty in a CPU-only build.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_BUILD_INFO_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_BUILD_INFO_H_

#include <string>

#include "absl/status/statusor.h"

namespace zerorun {

struct BuildInfo {
  std::string version;       // zerorun version, e.g. "0.1.0".
  bool with_cuda = false;    // Built with -DZR_WITH_CUDA=ON.
  std::string nccl_version;  // NCCL linked in, e.g. "2.28.3"; empty without CUDA.
};

BuildInfo GetBuildInfo();

// Number of CUDA devices usable by this process. A CPU-only build returns Unimplemented naming
// the CMake option; a machine without a driver or GPU returns 0 (never an error or a crash).
absl::StatusOr<int> CudaDeviceCount();

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_BUILD_INFO_H_
