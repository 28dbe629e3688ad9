// The engine's element-wise CUDA kernels: fp32 <-> bf16/fp16 casts, the squared-norm reduction,
// the finite check of loss scaling, gradient scaling and accumulation. Their CPU references: the
// CPU Kernels (device/cpu_kernels.cc: FromFloat / ToFloat / AddFloatInto of zerorun/dtype.h);
// tests/gpu/elementwise_kernel_test.cc and tests/gpu/kernels_test.cc check each against them.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_status.h"
#include "zerorun/cuda_kernels.h"

namespace zerorun::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;  // Partial sums of the norm: few enough to add on the host.

int Blocks(size_t n) {
  const size_t needed = (n + kThreads - 1) / kThreads;
  return static_cast<int>(needed < kMaxBlocks ? needed : kMaxBlocks);
}

// Device memory for one call's results, freed when the call returns.
struct Scratch {
  void* data = nullptr;
  absl::Status Allocate(size_t bytes) { return FromCuda(cudaMalloc(&data, bytes), "cudaMalloc"); }
  ~Scratch() {
    if (data != nullptr) static_cast<void>(cudaFree(data));
  }
};

absl::Status Finish(const char* kernel) {
  if (absl::Status s = FromCuda(cudaGetLastError(), kernel); !s.ok()) return s;
  return FromCuda(cudaDeviceSynchronize(), kernel);
}

// On a stream: the launch's error only, the kernel runs on; without one, Finish.
absl::Status Launched(const char* kernel, void* stream) {
  if (stream == nullptr) return Finish(kernel);
  return FromCuda(cudaGetLastError(), kernel);
}

// A kernel whose result the host reads: launched, then the stream (or the device) drained.
absl::Status Drained(const char* kernel, void* stream) {
  if (stream == nullptr) return Finish(kernel);
  if (absl::Status s = FromCuda(cudaGetLastError(), kernel); !s.ok()) return s;
  return FromCuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), kernel);
}

// Round to nearest even (the hardware conversions); NaN stays NaN (its payload may differ from
// the CPU's), overflow goes to inf as IEEE says.
__global__ void FromFloatKernel(bool bf16, const float* in, uint16_t* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(in[i]))
                  : __half_as_ushort(__float2half_rn(in[i]));
  }
}

__global__ void ToFloatKernel(bool bf16, const uint16_t* in, float* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = bf16 ? __bfloat162float(__ushort_as_bfloat16(in[i]))
                  : __half2float(__ushort_as_half(in[i]));
  }
}

// Per block, the sum in double of (g[i] x pre)^2, each square taken as the CPU does (the product
// in fp32, squared in double); the host adds the blocks' sums in block order.
__global__ void SumSquaresKernel(const float* g, size_t n, float pre, double* partial) {
  __shared__ double sums[kThreads];
  double sum = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float x = g[i] * pre;
    sum += static_cast<double>(x) * x;
  }
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

__global__ void AllFiniteKernel(const float* x, size_t n, int* finite) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    if (!isfinite(x[i])) *finite = 0;  // Any writer: every one writes 0.
  }
}

// acc += in: fp32 into fp32 (kind 0), or into bf16 (1) / fp16 (2) widened, added in fp32 and
// rounded to nearest even (AddFloatInto's arithmetic).
__global__ void AccumulateKernel(int kind, const float* in, void* acc, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    if (kind == 0) {
      static_cast<float*>(acc)[i] += in[i];
    } else if (kind == 1) {
      uint16_t& a = static_cast<uint16_t*>(acc)[i];
      a = __bfloat16_as_ushort(
          __float2bfloat16_rn(__bfloat162float(__ushort_as_bfloat16(a)) + in[i]));
    } else {
      uint16_t& a = static_cast<uint16_t*>(acc)[i];
      a = __half_as_ushort(__float2half_rn(__half2float(__ushort_as_half(a)) + in[i]));
    }
  }
}

__global__ void ScaleKernel(float* x, size_t n, float factor) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    x[i] *= factor;
  }
}

}  // namespace

absl::Status FromFloatDevice(DType dtype, const float* in, uint16_t* out, size_t n, void* stream) {
  if (dtype == DType::kFp32) return absl::InvalidArgumentError("fp32 is not a 16-bit dtype");
  if (n == 0) return absl::OkStatus();
  FromFloatKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      dtype == DType::kBf16, in, out, n);
  return Launched("FromFloatKernel", stream);
}

absl::Status ToFloatDevice(DType dtype, const uint16_t* in, float* out, size_t n, void* stream) {
  if (dtype == DType::kFp32) return absl::InvalidArgumentError("fp32 is not a 16-bit dtype");
  if (n == 0) return absl::OkStatus();
  ToFloatKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      dtype == DType::kBf16, in, out, n);
  return Launched("ToFloatKernel", stream);
}

absl::StatusOr<double> SumSquaresDevice(const float* g, size_t n, float pre, void* stream) {
  if (n == 0) return 0.0;
  const int blocks = Blocks(n);
  Scratch partial;
  if (absl::Status s = partial.Allocate(blocks * sizeof(double)); !s.ok()) return s;
  cudaStream_t on = static_cast<cudaStream_t>(stream);
  SumSquaresKernel<<<blocks, kThreads, 0, on>>>(g, n, pre, static_cast<double*>(partial.data));
  if (absl::Status s = Drained("SumSquaresKernel", stream); !s.ok()) return s;
  std::vector<double> host(static_cast<size_t>(blocks));
  if (absl::Status s = FromCuda(
          cudaMemcpy(host.data(), partial.data, blocks * sizeof(double), cudaMemcpyDeviceToHost),
          "cudaMemcpy D2H");
      !s.ok()) {
    return s;
  }
  double sum = 0;
  for (double b : host) sum += b;
  return sum;
}

absl::StatusOr<bool> AllFiniteDevice(const float* x, size_t n, void* stream) {
  if (n == 0) return true;
  Scratch flag;
  if (absl::Status s = flag.Allocate(sizeof(int)); !s.ok()) return s;
  int finite = 1;
  if (absl::Status s = FromCuda(cudaMemcpy(flag.data, &finite, sizeof(int), cudaMemcpyHostToDevice),
                                "cudaMemcpy H2D");
      !s.ok()) {
    return s;
  }
  AllFiniteKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, n, static_cast<int*>(flag.data));
  if (absl::Status s = Drained("AllFiniteKernel", stream); !s.ok()) return s;
  if (absl::Status s = FromCuda(cudaMemcpy(&finite, flag.data, sizeof(int), cudaMemcpyDeviceToHost),
                                "cudaMemcpy D2H");
      !s.ok()) {
    return s;
  }
  return finite == 1;
}

absl::Status AccumulateDevice(DType acc_dtype, const float* in, void* acc, size_t n, void* stream) {
  if (n == 0) return absl::OkStatus();
  const int kind = acc_dtype == DType::kFp32 ? 0 : acc_dtype == DType::kBf16 ? 1 : 2;
  AccumulateKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(kind, in, acc, n);
  return Launched("AccumulateKernel", stream);
}

absl::Status CopyBytesDevice(const void* src, void* dst, size_t bytes, void* stream) {
  if (stream == nullptr) {
    return FromCuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
  }
  return FromCuda(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)),
      "cudaMemcpyAsync D2D");
}

absl::Status ScaleDevice(float* x, size_t n, float factor, void* stream) {
  if (n == 0) return absl::OkStatus();
  ScaleKernel<<<Blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, factor);
  return Launched("ScaleKernel", stream);
}

}  // namespace zerorun::cuda
