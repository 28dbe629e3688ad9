// The CPU Kernels (zerorun/kernels.h), the reference the CUDA ones are tested against and what
// the engine runs: each against its scalar definition (bit for bit), the same results through an
// asynchronous CPU stream, and the argument checks every device shares (InvalidArgument naming
// the call, nothing touched). The [device] tag: TSan runs the stream case.
#include "zerorun/kernels.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "zerorun/build_info.h"
#include "zerorun/dtype.h"

namespace zerorun {
namespace {

std::vector<float> Values(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = 0.001f * static_cast<float>((i * 7919 + seed * 104729) % 20011) - 10.0f;
  }
  return v;
}

TEST_CASE("CPU kernels: each equals its scalar definition bit for bit", "[device]") {
  std::unique_ptr<Kernels> k = CreateCpuKernels();
  REQUIRE(k->device() == Device::Cpu());
  const size_t n = 4099;  // Not a multiple of any vector width.
  const std::vector<float> in = Values(n, 1), base = Values(n, 2);

  std::vector<float> x = base;
  REQUIRE(k->Scale(HostView(x.data(), n), 1.0f / 12).ok());
  double squares = 0;
  for (size_t i = 0; i < n; ++i) {
    CHECK(FloatBits(x[i]) == FloatBits(base[i] * (1.0f / 12)));
    const float y = base[i] * 3.0f;
    squares += static_cast<double>(y) * y;
  }
  // The squared norm: fp32 products, squared and added in double in index order (exactly).
  CHECK(*k->SumSquares(HostView(const_cast<float*>(base.data()), n), 3.0f) == squares);

  std::vector<float> acc = base;
  REQUIRE(k->Accumulate(HostView(const_cast<float*>(in.data()), n), HostView(acc.data(), n)).ok());
  for (size_t i = 0; i < n; ++i) CHECK(FloatBits(acc[i]) == FloatBits(base[i] + in[i]));

  for (DType dtype : {DType::kBf16, DType::kFp16}) {
    INFO(DTypeName(dtype));
    std::vector<uint16_t> half(n), acc16(n);
    std::vector<float> back(n);
    REQUIRE(k->Convert(HostView(const_cast<float*>(in.data()), n), HostView(half.data(), n, dtype))
                .ok());
    REQUIRE(k->Convert(HostView(half.data(), n, dtype), HostView(back.data(), n)).ok());
    REQUIRE(
        k->Convert(HostView(const_cast<float*>(base.data()), n), HostView(acc16.data(), n, dtype))
            .ok());
    const std::vector<uint16_t> before = acc16;
    REQUIRE(
        k->Accumulate(HostView(const_cast<float*>(in.data()), n), HostView(acc16.data(), n, dtype))
            .ok());
    for (size_t i = 0; i < n; ++i) {
      const bool bf16 = dtype == DType::kBf16;
      const uint16_t want = bf16 ? FloatToBf16(in[i]) : FloatToFp16(in[i]);
      CHECK(half[i] == want);
      CHECK(FloatBits(back[i]) == FloatBits(bf16 ? Bf16ToFloat(want) : Fp16ToFloat(want)));
      const float sum = (bf16 ? Bf16ToFloat(before[i]) : Fp16ToFloat(before[i])) + in[i];
      CHECK(acc16[i] == (bf16 ? FloatToBf16(sum) : FloatToFp16(sum)));
    }
  }

  std::vector<float> copy(n);
  REQUIRE(k->Convert(HostView(const_cast<float*>(in.data()), n), HostView(copy.data(), n)).ok());
  CHECK(copy == in);

  std::vector<float> bad = base;
  CHECK(*k->AllFinite(HostView(bad.data(), n)));
  for (float v : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN()}) {
    bad[n - 1] = v;
    CHECK_FALSE(*k->AllFinite(HostView(bad.data(), n)));
  }
  // Empty views: nothing to do, the neutral results.
  CHECK(*k->SumSquares(HostView(x.data(), 0), 1.0f) == 0.0);
  CHECK(*k->AllFinite(HostView(bad.data(), 0)));
}

TEST_CASE("CPU kernels on an asynchronous stream give the synchronous results", "[device]") {
  std::unique_ptr<Kernels> k = CreateCpuKernels();
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  const size_t n = 1 << 16;
  const std::vector<float> in = Values(n, 3), base = Values(n, 4);
  std::vector<float> sync = base, async = base;
  std::vector<uint16_t> sync16(n), async16(n);
  REQUIRE(k->Accumulate(HostView(const_cast<float*>(in.data()), n), HostView(sync.data(), n)).ok());
  REQUIRE(k->Scale(HostView(sync.data(), n), 0.5f).ok());
  REQUIRE(k->Convert(HostView(sync.data(), n), HostView(sync16.data(), n, DType::kBf16)).ok());
  REQUIRE(k->Accumulate(HostView(const_cast<float*>(in.data()), n), HostView(async.data(), n),
                        stream.get())
              .ok());
  REQUIRE(k->Scale(HostView(async.data(), n), 0.5f, stream.get()).ok());
  REQUIRE(
      k->Convert(HostView(async.data(), n), HostView(async16.data(), n, DType::kBf16), stream.get())
          .ok());
  // SumSquares waits for the stream's work before reading the buffer.
  const double squares = *k->SumSquares(HostView(async.data(), n), 1.0f, stream.get());
  CHECK(async == sync);
  CHECK(async16 == sync16);
  CHECK(squares == *k->SumSquares(HostView(sync.data(), n), 1.0f));
  // A stream's earlier failure is what SumSquares returns.
  stream->Enqueue([] { return absl::DataLossError("disk went away"); });
  CHECK(k->SumSquares(HostView(async.data(), n), 1.0f, stream.get()).status().code() ==
        absl::StatusCode::kDataLoss);
}

TEST_CASE("Kernels refuse bad arguments by name and touch nothing", "[device]") {
  std::unique_ptr<Kernels> k = CreateCpuKernels();
  std::vector<float> a = Values(8, 5), b = Values(8, 6);
  const std::vector<float> a0 = a, b0 = b;
  std::vector<uint16_t> h(8), f(8);
  auto refused = [](const absl::Status& s, const std::string& words) {
    INFO(s.ToString());
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.message().find(words) != std::string::npos);
  };
  refused(k->Scale(HostView(h.data(), 8, DType::kBf16), 2.0f), "Kernels::Scale: x holds bf16");
  refused(k->Convert(HostView(a.data(), 8), HostView(b.data(), 7)),
          "Kernels::Convert: in has 8 elements, out 7");
  refused(k->Convert(HostView(a.data(), 8), HostView(a.data() + 4, 4)), "elements");
  refused(k->Convert(HostView(a.data(), 4), HostView(a.data() + 2, 4)), "in and out overlap");
  refused(k->Convert(HostView(h.data(), 8, DType::kBf16), HostView(f.data(), 8, DType::kFp16)),
          "bf16 -> fp16 (one side must be fp32)");
  refused(k->Accumulate(HostView(h.data(), 8, DType::kBf16), HostView(a.data(), 8)),
          "Kernels::Accumulate: in holds bf16");
  BufferView on_gpu = HostView(a.data(), 8);
  on_gpu.device = Device::Cuda(0);
  refused(k->Scale(on_gpu, 2.0f), "x is on cuda:0, these kernels on cpu");
  refused(k->SumSquares(HostView(nullptr, 3), 1.0f).status(), "x is null");
  CHECK(a == a0);
  CHECK(b == b0);
  // CUDA kernels: Unimplemented naming the fix in a CPU build, an error naming the device where
  // the build has CUDA but the machine no GPU (tests/gpu runs them on one).
  absl::StatusOr<std::unique_ptr<Kernels>> cuda = CreateKernels(Device::Cuda(0));
  if (!GetBuildInfo().with_cuda) {
    CHECK(cuda.status().code() == absl::StatusCode::kUnimplemented);
    CHECK_THAT(std::string(cuda.status().message()), Catch::Contains("-DZR_WITH_CUDA=ON"));
  } else if (CudaDeviceCount().value_or(0) == 0) {
    CHECK_THAT(std::string(cuda.status().message()), Catch::Contains("cuda:0"));
  }
}

}  // namespace
}  // namespace zerorun
