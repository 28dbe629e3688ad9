// CUDA AdamW kernel and the small device helpers of zr_cuda; the CPU twin is optim/adamw_reference.
#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_status.h"
#include "zerorun/cuda_kernels.h"

namespace zerorun::cuda {
namespace {

// One thread per element, grid-stride: the step is memory bound (28 B per element), so the
// block size only needs to keep enough loads in flight; 256 threads x 4 blocks per SM does.
// bf16 round-to-nearest-even with NaN kept NaN, as FloatToBf16 in zerorun/dtype.h.
__device__ inline uint16_t ToBf16(float f) {
  uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// `working`, when not null, receives the bf16 copy of each updated fp32 master weight.
__global__ void AdamWKernel(size_t n, float lr, float beta1, float beta2, float eps, float decay,
                            float step_size, float bias_correction2_sqrt, float* p, const float* g,
                            float* m, float* v, uint16_t* working) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    float pi = p[i] * decay;
    const float mi = m[i] + (gi - m[i]) * (1.0f - beta1);
    const float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
    const float denom = sqrtf(vi) / bias_correction2_sqrt + eps;
    pi -= step_size * (mi / denom);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (working != nullptr) working[i] = ToBf16(pi);
  }
}

}  // namespace

absl::StatusOr<int> DeviceCount() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  // No driver, an old driver or no device all mean "no GPU here", not a failure.
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    cudaGetLastError();
    return 0;
  }
  if (err != cudaSuccess) return FromCuda(err, "cudaGetDeviceCount");
  return count;
}

absl::Status AdamWStepDevice(const AdamWHyper& hyper, int64_t step, size_t num_elements,
                             float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                             uint16_t* working_bf16, void* stream) {
  if (num_elements == 0) return absl::OkStatus();
  const double bias_correction1 = 1.0 - pow(static_cast<double>(hyper.beta1), step);
  const double bias_correction2 = 1.0 - pow(static_cast<double>(hyper.beta2), step);
  const float step_size = static_cast<float>(hyper.lr / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(sqrt(bias_correction2));
  const float decay = 1.0f - hyper.lr * hyper.weight_decay;
  constexpr int kThreads = 256;
  const size_t blocks_needed = (num_elements + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(blocks_needed < 65535 ? blocks_needed : 65535);
  AdamWKernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      num_elements, hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, decay, step_size,
      bias_correction2_sqrt, param, grad, exp_avg, exp_avg_sq, working_bf16);
  if (absl::Status s = FromCuda(cudaGetLastError(), "AdamWKernel launch"); !s.ok()) return s;
  if (stream != nullptr) return absl::OkStatus();  // Runs on; the stream reports the rest.
  return FromCuda(cudaDeviceSynchronize(), "AdamWKernel");
}

absl::StatusOr<uint16_t*> AllocHalves(size_t num_elements) {
  void* ptr = nullptr;
  if (absl::Status s = FromCuda(cudaMalloc(&ptr, num_elements * sizeof(uint16_t)), "cudaMalloc");
      !s.ok()) {
    return s;
  }
  return static_cast<uint16_t*>(ptr);
}

absl::Status CopyHalvesToHost(const uint16_t* device, uint16_t* host, size_t num_elements) {
  return FromCuda(cudaMemcpy(host, device, num_elements * sizeof(uint16_t), cudaMemcpyDeviceToHost),
                  "cudaMemcpy D2H");
}

absl::StatusOr<float*> Alloc(size_t num_elements) {
  void* ptr = nullptr;
  if (absl::Status s = FromCuda(cudaMalloc(&ptr, num_elements * sizeof(float)), "cudaMalloc");
      !s.ok()) {
    return s;
  }
  return static_cast<float*>(ptr);
}

absl::Status Free(void* device_ptr) { return FromCuda(cudaFree(device_ptr), "cudaFree"); }

absl::Status CopyToDevice(const float* host, float* device, size_t num_elements) {
  return FromCuda(cudaMemcpy(device, host, num_elements * sizeof(float), cudaMemcpyHostToDevice),
                  "cudaMemcpy H2D");
}

absl::Status CopyToHost(const float* device, float* host, size_t num_elements) {
  return FromCuda(cudaMemcpy(host, device, num_elements * sizeof(float), cudaMemcpyDeviceToHost),
                  "cudaMemcpy D2H");
}

absl::Status CopyDeviceToDevice(const float* src, float* dst, size_t num_elements) {
  return FromCuda(cudaMemcpy(dst, src, num_elements * sizeof(float), cudaMemcpyDeviceToDevice),
                  "cudaMemcpy D2D");
}

absl::Status Synchronize() { return FromCuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

absl::StatusOr<std::string> DeviceName() {
  cudaDeviceProp prop{};
  if (absl::Status s = FromCuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
      !s.ok()) {
    return s;
  }
  return std::string(prop.name);
}

}  // namespace zerorun::cuda
