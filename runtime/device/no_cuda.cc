// The CUDA device layer and kernels, the NCCL backend and AdamW on CUDA in a build without CUDA:
// each says so and how to get them (device/cuda_device.cc, device/cuda_kernels.cc,
// comm/nccl_communicator.cc and optim/cuda_adamw.cc replace this file in a CUDA build).
#include "absl/strings/str_cat.h"
#include "zerorun/comm.h"
#include "zerorun/device.h"
#include "zerorun/kernels.h"
#include "zerorun/optimizer.h"

namespace zerorun {
namespace {

absl::Status NoCuda(const char* what) {
  return absl::UnimplementedError(
      absl::StrCat(what,
                   " is not in this build (CPU only). Fix: --device cpu, or build with the "
                   "CUDA toolkit and NCCL present (-DZR_WITH_CUDA=ON)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Stream>> CreateCudaStream(int) { return NoCuda("a CUDA stream"); }
absl::StatusOr<std::unique_ptr<Stream>> WrapCudaStream(int, void*) {
  return NoCuda("a CUDA stream");
}
absl::StatusOr<std::unique_ptr<Allocator>> CreateCudaAllocator(MemoryKind, int) {
  return NoCuda("CUDA memory");
}
absl::StatusOr<std::unique_ptr<Kernels>> CreateCudaKernels(int) { return NoCuda("CUDA kernels"); }
absl::StatusOr<std::unique_ptr<Optimizer>> CreateCudaAdamW(const AdamWHyper&, Stream&) {
  return NoCuda("AdamW on CUDA");
}
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(KvStore&, int rank, int,
                                                                     int index,
                                                                     const CommOptions&) {
  return absl::UnimplementedError(absl::StrCat(
      "rank ", rank, ": no communicator for cuda:", index,
      " in this build (NCCL collectives need the CUDA build). Fix: --device cpu, or build with "
      "the CUDA toolkit and NCCL present (-DZR_WITH_CUDA=ON)"));
}

}  // namespace zerorun
