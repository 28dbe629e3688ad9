// The NCCL call sites of the CUDA build: which NCCL is linked, and a one-process all-reduce over
// the visible GPUs. The NCCL communicator backend grows here.
#include <cuda_runtime.h>
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

absl::StatusOr<std::vector<float>> NcclAllReduceSmoke(size_t num_elements) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    return absl::FailedPreconditionError("no CUDA device");
  }
  std::vector<ncclComm_t> comms(devices);
  if (ncclResult_t r = ncclCommInitAll(comms.data(), devices, nullptr); r != ncclSuccess) {
    return absl::InternalError(absl::StrCat("ncclCommInitAll: ", ncclGetErrorString(r)));
  }
  std::vector<float*> buffers(devices, nullptr);
  std::vector<cudaStream_t> streams(devices);
  absl::Status status;
  for (int d = 0; d < devices && status.ok(); ++d) {
    cudaSetDevice(d);
    const std::vector<float> init(num_elements, static_cast<float>(d + 1));
    if (cudaMalloc(&buffers[d], num_elements * sizeof(float)) != cudaSuccess ||
        cudaMemcpy(buffers[d], init.data(), num_elements * sizeof(float), cudaMemcpyHostToDevice) !=
            cudaSuccess ||
        cudaStreamCreate(&streams[d]) != cudaSuccess) {
      status = absl::InternalError("CUDA allocation for the NCCL smoke test failed");
    }
  }
  if (status.ok()) {
    ncclGroupStart();
    for (int d = 0; d < devices; ++d) {
      ncclAllReduce(buffers[d], buffers[d], num_elements, ncclFloat, ncclSum, comms[d], streams[d]);
    }
    if (ncclResult_t r = ncclGroupEnd(); r != ncclSuccess) {
      status = absl::InternalError(absl::StrCat("ncclAllReduce: ", ncclGetErrorString(r)));
    }
  }
  std::vector<float> out(num_elements * devices);
  for (int d = 0; d < devices; ++d) {
    cudaSetDevice(d);
    if (status.ok() &&
        (cudaStreamSynchronize(streams[d]) != cudaSuccess ||
         cudaMemcpy(out.data() + d * num_elements, buffers[d], num_elements * sizeof(float),
                    cudaMemcpyDeviceToHost) != cudaSuccess)) {
      status = absl::InternalError("CUDA copy-back after ncclAllReduce failed");
    }
    cudaFree(buffers[d]);
    cudaStreamDestroy(streams[d]);
    ncclCommDestroy(comms[d]);
  }
  if (!status.ok()) return status;
  return out;
}

}  // namespace zerorun::cuda
