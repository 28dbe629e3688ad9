// GPU tests (label gpu; need a CUDA device): the engine's element-wise kernels against their CPU
// references: casts fp32 <-> bf16 / fp16 (FromFloat / ToFloat, bit for bit; NaN stays NaN), the
// squared-norm reduction (the CPU Kernels' terms, within 1e-12 relative), the finite check, and
// scaling (the CPU's products, bit for bit); then the CUDA Kernels against the CPU Kernels
// through the interface the engine calls (zerorun/kernels.h), synchronous and on a stream.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "zerorun/cuda_kernels.h"
#include "zerorun/device.h"
#include "zerorun/dtype.h"
#include "zerorun/kernels.h"

namespace zerorun {
namespace {

// Values that exercise rounding: ties to even, subnormals of both 16-bit formats, overflow past
// fp16's 65504, signed zeros, inf and NaN, and a spread of ordinary magnitudes.
std::vector<float> Probe() {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          BitsFloat(0x3f808000u),  // bf16 tie, rounds to even (down).
                          BitsFloat(0x3f818000u),  // bf16 tie, rounds to even (up).
                          65504.0f,
                          65520.0f,  // fp16: rounds to inf.
                          1e-7f,     // fp16 subnormal.
                          5.9604645e-8f,
                          1e-40f,  // fp32 subnormal.
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()};
  for (uint32_t i = 0; i < (1u << 20); ++i) {
    v.push_back(BitsFloat(0x30000000u + i * 0x3fffu));  // 2^-31 .. ~2^33, every few ulps.
  }
  return v;
}

template <typename T>
T* ToDevice(const std::vector<T>& host) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 2);
  if constexpr (sizeof(T) == 4) {
    float* d = *cuda::Alloc(host.size());
    REQUIRE(cuda::CopyToDevice(reinterpret_cast<const float*>(host.data()), d, host.size()).ok());
    return reinterpret_cast<T*>(d);
  } else {
    // Two halves per float slot: the copy helpers move floats.
    std::vector<float> packed((host.size() + 1) / 2);
    std::memcpy(packed.data(), host.data(), host.size() * sizeof(T));
    float* d = *cuda::Alloc(packed.size());
    REQUIRE(cuda::CopyToDevice(packed.data(), d, packed.size()).ok());
    return reinterpret_cast<T*>(d);
  }
}

TEST_CASE("CUDA casts equal FromFloat and ToFloat bit for bit", "[gpu]") {
  REQUIRE(*cuda::DeviceCount() > 0);
  const std::vector<float> in = Probe();
  const size_t n = in.size();
  float* d_in = ToDevice(in);
  uint16_t* d_half = *cuda::AllocHalves(n);
  float* d_back = *cuda::Alloc(n);
  for (DType dtype : {DType::kBf16, DType::kFp16}) {
    INFO(DTypeName(dtype));
    std::vector<uint16_t> expected(n), got(n);
    FromFloat(dtype, in.data(), expected.data(), n);
    REQUIRE(cuda::FromFloatDevice(dtype, d_in, d_half, n).ok());
    REQUIRE(cuda::CopyHalvesToHost(d_half, got.data(), n).ok());
    size_t mismatches = 0;
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(in[i])) {
        std::vector<float> one(1);
        ToFloat(dtype, &got[i], one.data(), 1);
        CHECK(std::isnan(one[0]));
      } else if (got[i] != expected[i]) {
        ++mismatches;
      }
    }
    CHECK(mismatches == 0);
    // And back: exact widening of the CPU's halves.
    std::vector<float> widened(n), back(n);
    ToFloat(dtype, expected.data(), widened.data(), n);
    uint16_t* d_expected = ToDevice(expected);
    REQUIRE(cuda::ToFloatDevice(dtype, d_expected, d_back, n).ok());
    REQUIRE(cuda::CopyToHost(d_back, back.data(), n).ok());
    REQUIRE(cuda::Free(d_expected).ok());
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(widened[i])) {
        CHECK(std::isnan(back[i]));
      } else if (FloatBits(back[i]) != FloatBits(widened[i])) {
        ++mismatches;
      }
    }
    CHECK(mismatches == 0);
  }
  CHECK(cuda::FromFloatDevice(DType::kFp32, d_in, d_half, n).code() ==
        absl::StatusCode::kInvalidArgument);
  for (void* p :
       {static_cast<void*>(d_in), static_cast<void*>(d_half), static_cast<void*>(d_back)}) {
    REQUIRE(cuda::Free(p).ok());
  }
}

TEST_CASE("CUDA squared norm, finite check and scaling match the CPU", "[gpu]") {
  REQUIRE(*cuda::DeviceCount() > 0);
  const size_t n = (1 << 22) + 17;  // More blocks than the grid: the grid-stride loop runs.
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = 0.001f * static_cast<float>((i * 7919) % 2003) - 1.0f;
  float* d = ToDevice(g);
  const float pre = 1.0f / 24.0f;
  double expected = 0;  // The CPU Kernels' terms, in element order.
  for (float x : g) {
    const float y = x * pre;
    expected += static_cast<double>(y) * y;
  }
  absl::StatusOr<double> got = cuda::SumSquaresDevice(d, n, pre);
  REQUIRE(got.ok());
  CHECK(std::abs(*got - expected) <= 1e-12 * expected);
  CHECK(*cuda::AllFiniteDevice(d, n));
  // Scaling: the same fp32 products.
  REQUIRE(cuda::ScaleDevice(d, n, pre).ok());
  std::vector<float> scaled(n);
  REQUIRE(cuda::CopyToHost(d, scaled.data(), n).ok());
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) mismatches += FloatBits(scaled[i]) != FloatBits(g[i] * pre);
  CHECK(mismatches == 0);
  // One inf or NaN anywhere (the last element: the grid-stride tail) fails the finite check.
  for (float bad :
       {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    g[n - 1] = bad;
    REQUIRE(cuda::CopyToDevice(g.data(), d, n).ok());
    CHECK_FALSE(*cuda::AllFiniteDevice(d, n));
  }
  REQUIRE(cuda::Free(d).ok());
}

// Copies `n` elements of `view` (on the device) to the host as their bytes.
std::vector<uint16_t> HalvesOf(const BufferView& view) {
  std::vector<uint16_t> out(view.count);
  REQUIRE(
      cuda::CopyHalvesToHost(static_cast<const uint16_t*>(view.data), out.data(), view.count).ok());
  return out;
}
std::vector<float> FloatsOf(const BufferView& view) {
  std::vector<float> out(view.count);
  REQUIRE(cuda::CopyToHost(static_cast<const float*>(view.data), out.data(), view.count).ok());
  return out;
}

TEST_CASE("The CUDA Kernels equal the CPU Kernels: synchronous and on a stream", "[gpu]") {
  REQUIRE(*cuda::DeviceCount() > 0);
  std::unique_ptr<Kernels> cpu = CreateCpuKernels();
  std::unique_ptr<Kernels> gpu = *CreateKernels(Device::Cuda(0));
  std::unique_ptr<Allocator> memory = *CreateCudaAllocator(MemoryKind::kDevice, 0);
  std::unique_ptr<Stream> stream = *CreateCudaStream(0);
  const size_t n = (1 << 20) + 3;
  std::vector<float> in(n), acc32(n);
  for (size_t i = 0; i < n; ++i) {
    in[i] = 0.01f * static_cast<float>((i * 7919) % 4001) - 20.0f;
    acc32[i] = 0.003f * static_cast<float>((i * 104729) % 997) - 1.5f;
  }
  for (Stream* on : {static_cast<Stream*>(nullptr), stream.get()}) {
    INFO((on == nullptr ? "synchronous" : "on a stream"));
    Buffer d_in = *Buffer::Allocate(*memory, n, DType::kFp32);
    Buffer d_acc = *Buffer::Allocate(*memory, n, DType::kFp32);
    REQUIRE(cuda::CopyToDevice(in.data(), static_cast<float*>(d_in.view().data), n).ok());
    REQUIRE(cuda::CopyToDevice(acc32.data(), static_cast<float*>(d_acc.view().data), n).ok());
    // Accumulate into fp32, then Scale: the CPU's bits.
    std::vector<float> want = acc32;
    REQUIRE(cpu->Accumulate(HostView(in.data(), n), HostView(want.data(), n)).ok());
    REQUIRE(cpu->Scale(HostView(want.data(), n), 0.125f / 3).ok());
    REQUIRE(gpu->Accumulate(d_in.view(), d_acc.view(), on).ok());
    REQUIRE(gpu->Scale(d_acc.view(), 0.125f / 3, on).ok());
    if (on != nullptr) REQUIRE(on->Synchronize().ok());
    const std::vector<float> got = FloatsOf(d_acc.view());
    size_t mismatches = 0;
    for (size_t i = 0; i < n; ++i) mismatches += FloatBits(got[i]) != FloatBits(want[i]);
    CHECK(mismatches == 0);
    const double squares = *cpu->SumSquares(HostView(want.data(), n), 3.0f);
    CHECK(std::abs(*gpu->SumSquares(d_acc.view(), 3.0f, on) - squares) <= 1e-12 * squares);
    CHECK(*gpu->AllFinite(d_acc.view(), on));
    for (DType dtype : {DType::kBf16, DType::kFp16}) {
      INFO(DTypeName(dtype));
      // Convert down and up, Accumulate into 16 bits: the CPU's bits.
      std::vector<uint16_t> half(n), acc16(n);
      REQUIRE(cpu->Convert(HostView(in.data(), n), HostView(half.data(), n, dtype)).ok());
      REQUIRE(cpu->Convert(HostView(acc32.data(), n), HostView(acc16.data(), n, dtype)).ok());
      Buffer d_half = *Buffer::Allocate(*memory, n, dtype);
      Buffer d_acc16 = *Buffer::Allocate(*memory, n, dtype);
      REQUIRE(gpu->Convert(d_in.view(), d_half.view(), on).ok());
      Buffer d_back = *Buffer::Allocate(*memory, n, DType::kFp32);
      REQUIRE(gpu->Convert(d_half.view(), d_back.view(), on).ok());
      Buffer d_acc32 = *Buffer::Allocate(*memory, n, DType::kFp32);
      REQUIRE(cuda::CopyToDevice(acc32.data(), static_cast<float*>(d_acc32.view().data), n).ok());
      REQUIRE(gpu->Convert(d_acc32.view(), d_acc16.view(), on).ok());
      REQUIRE(gpu->Accumulate(d_in.view(), d_acc16.view(), on).ok());
      if (on != nullptr) REQUIRE(on->Synchronize().ok());
      CHECK(HalvesOf(d_half.view()) == half);
      std::vector<float> back(n);
      REQUIRE(cpu->Convert(HostView(half.data(), n, dtype), HostView(back.data(), n)).ok());
      const std::vector<float> got_back = FloatsOf(d_back.view());
      size_t wrong = 0;
      for (size_t i = 0; i < n; ++i) wrong += FloatBits(got_back[i]) != FloatBits(back[i]);
      CHECK(wrong == 0);
      REQUIRE(cpu->Accumulate(HostView(in.data(), n), HostView(acc16.data(), n, dtype)).ok());
      CHECK(HalvesOf(d_acc16.view()) == acc16);
    }
    // A copy (same dtype) and the refusals: a host view, another device's stream.
    Buffer d_copy = *Buffer::Allocate(*memory, n, DType::kFp32);
    REQUIRE(gpu->Convert(d_in.view(), d_copy.view(), on).ok());
    if (on != nullptr) REQUIRE(on->Synchronize().ok());
    CHECK(FloatsOf(d_copy.view()) == in);
    CHECK(gpu->Scale(HostView(in.data(), n), 2.0f, on).code() ==
          absl::StatusCode::kInvalidArgument);
    std::unique_ptr<Stream> host_stream = CreateCpuStream(false);
    CHECK(gpu->Scale(d_in.view(), 2.0f, host_stream.get()).code() ==
          absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace zerorun
