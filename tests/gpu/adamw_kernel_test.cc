// GPU tests (label gpu; need a CUDA device): the AdamW kernel (fp32, and with the bf16
// write-back) against the CPU reference, the same kernel on a stream behind the Optimizer
// interface against the CPU optimizer, and an NCCL all-reduce over the visible GPUs.
#include <catch2/catch.hpp>
#include <vector>

#include "zerorun/adamw.h"
#include "zerorun/build_info.h"
#include "zerorun/cuda_kernels.h"
#include "zerorun/device.h"
#include "zerorun/dtype.h"
#include "zerorun/optimizer.h"

namespace zerorun {
namespace {

TEST_CASE("CUDA AdamW matches the CPU reference over 3 steps", "[gpu]") {
  absl::StatusOr<int> gpus = cuda::DeviceCount();
  REQUIRE(gpus.ok());
  REQUIRE(*gpus > 0);
  const size_t n = 1 << 20;
  std::vector<float> p(n), g(n), m(n, 0), v(n, 0);
  for (size_t i = 0; i < n; ++i) {
    p[i] = 0.001f * static_cast<float>(i % 997) - 0.5f;
    g[i] = 0.01f * static_cast<float>((i * 7919) % 101) - 0.5f;
  }
  std::vector<float> rp = p, rm = m, rv = v;
  const AdamWHyper h{.lr = 1e-3f, .weight_decay = 0.1f};
  float* d[4];
  std::vector<float>* host[4] = {&p, &g, &m, &v};
  for (int k = 0; k < 4; ++k) {
    d[k] = *cuda::Alloc(n);
    REQUIRE(cuda::CopyToDevice(host[k]->data(), d[k], n).ok());
  }
  for (int step = 1; step <= 3; ++step) {
    AdamWStepReference(h, step, n, rp.data(), g.data(), rm.data(), rv.data());
    REQUIRE(cuda::AdamWStepDevice(h, step, n, d[0], d[1], d[2], d[3]).ok());
  }
  REQUIRE(cuda::CopyToHost(d[0], p.data(), n).ok());
  for (int k = 0; k < 4; ++k) REQUIRE(cuda::Free(d[k]).ok());
  double max_error = 0;
  for (size_t i = 0; i < n; ++i) max_error = std::max<double>(max_error, std::abs(p[i] - rp[i]));
  CHECK(max_error < 1e-6);  // Same formula; only sqrt/division rounding may differ.
  CHECK_FALSE(GetBuildInfo().nccl_version.empty());
}

TEST_CASE("AdamW on a CUDA stream behind the Optimizer interface matches the CPU optimizer",
          "[gpu]") {
  // The engine's use: chunks of one array, a per-chunk weight decay, the step's lr, 4 steps.
  const AdamWHyper h{.lr = 1e-3f, .weight_decay = 0.05f};
  std::unique_ptr<Optimizer> cpu = CreateCpuAdamW(h);
  absl::StatusOr<std::unique_ptr<Stream>> stream = CreateCudaStream(0);
  REQUIRE(stream.ok());
  absl::StatusOr<std::unique_ptr<Optimizer>> gpu = CreateCudaAdamW(h, **stream);
  REQUIRE(gpu.ok());
  CHECK(std::string((*gpu)->name()) == "AdamW (cuda)");
  CHECK(absl::IsInvalidArgument(CreateCudaAdamW(h, *CreateCpuStream(false)).status()));
  absl::StatusOr<std::unique_ptr<Allocator>> device = CreateCudaAllocator(MemoryKind::kDevice, 0);
  REQUIRE(device.ok());
  const size_t n = 3 * 100003;
  std::vector<float> p(n), g(n), m(n, 0), v(n, 0);
  for (size_t i = 0; i < n; ++i) {
    p[i] = 0.002f * static_cast<float>(i % 499) - 0.5f;
    g[i] = 0.01f * static_cast<float>((i * 7919) % 103) - 0.5f;
  }
  std::vector<Buffer> d;
  for (std::vector<float>* a : {&p, &g, &m, &v}) {
    d.push_back(*Buffer::Allocate(**device, n, DType::kFp32));
    REQUIRE(cuda::CopyToDevice(a->data(), static_cast<float*>(d.back().view().data), n).ok());
  }
  auto at = [&](int a, size_t k) { return static_cast<float*>(d[a].view().data) + k * (n / 3); };
  for (int step = 1; step <= 4; ++step) {
    const float lr = 1e-3f / static_cast<float>(step);
    for (size_t k = 0; k < 3; ++k) {
      const float decay = k == 1 ? 0.0f : -1.0f;  // A no-decay chunk, the others the default.
      const size_t o = k * (n / 3);
      cpu->Step(step, lr, decay, n / 3, p.data() + o, g.data() + o, m.data() + o, v.data() + o);
      (*gpu)->Step(step, lr, decay, n / 3, at(0, k), at(1, k), at(2, k), at(3, k));
    }
  }
  REQUIRE((*stream)->Synchronize().ok());
  std::vector<float> got(n);
  REQUIRE(cuda::CopyToHost(at(0, 0), got.data(), n).ok());
  double max_error = 0;
  for (size_t i = 0; i < n; ++i) max_error = std::max<double>(max_error, std::abs(got[i] - p[i]));
  CHECK(max_error < 1e-6);
}

}  // namespace
}  // namespace zerorun

namespace zerorun {
namespace {

TEST_CASE("CUDA AdamW writes the bf16 working copy of its fp32 master by RNE", "[gpu]") {
  const size_t n = 1 << 20;
  std::vector<float> p(n), g(n), zeros(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    p[i] = 0.37f * static_cast<float>(i % 1013) - 150.0f;
    g[i] = 0.003f * static_cast<float>((i * 7919) % 211) - 0.3f;
  }
  std::vector<float> rp = p, rm = zeros, rv = zeros;
  float *dp = *cuda::Alloc(n), *dg = *cuda::Alloc(n), *dm = *cuda::Alloc(n), *dv = *cuda::Alloc(n);
  uint16_t* dw = *cuda::AllocHalves(n);
  REQUIRE(cuda::CopyToDevice(p.data(), dp, n).ok());
  REQUIRE(cuda::CopyToDevice(g.data(), dg, n).ok());
  REQUIRE(cuda::CopyToDevice(zeros.data(), dm, n).ok());
  REQUIRE(cuda::CopyToDevice(zeros.data(), dv, n).ok());
  const AdamWHyper h{.lr = 1e-2f};
  for (int step = 1; step <= 2; ++step) {
    AdamWStepReference(h, step, n, rp.data(), g.data(), rm.data(), rv.data());
    REQUIRE(cuda::AdamWStepDevice(h, step, n, dp, dg, dm, dv, dw).ok());
  }
  std::vector<uint16_t> working(n);
  REQUIRE(cuda::CopyToHost(dp, p.data(), n).ok());
  REQUIRE(cuda::CopyHalvesToHost(dw, working.data(), n).ok());
  for (void* ptr : {static_cast<void*>(dp), static_cast<void*>(dg), static_cast<void*>(dm),
                    static_cast<void*>(dv), static_cast<void*>(dw)}) {
    REQUIRE(cuda::Free(ptr).ok());
  }
  size_t mismatched = 0;
  double max_error = 0;
  for (size_t i = 0; i < n; ++i) {
    mismatched += working[i] != FloatToBf16(p[i]);
    max_error =
        std::max<double>(max_error, std::abs(p[i] - rp[i]) / std::max(1.0f, std::abs(rp[i])));
  }
  CHECK(mismatched == 0);   // The write-back rounds exactly like the CPU's FloatToBf16.
  CHECK(max_error < 1e-6);  // The fp32 master follows the CPU reference.
}

TEST_CASE("NCCL all-reduces across the visible GPUs of one process", "[gpu]") {
  const absl::StatusOr<int> gpus = cuda::DeviceCount();
  REQUIRE(gpus.ok());
  absl::StatusOr<std::vector<float>> out = cuda::NcclAllReduceSmoke(1 << 20);
  INFO(out.status().ToString());
  REQUIRE(out.ok());
  const float want = static_cast<float>(*gpus * (*gpus + 1) / 2);
  size_t wrong = 0;
  for (float x : *out) wrong += x != want;
  CHECK(out->size() == static_cast<size_t>(*gpus) << 20);
  CHECK(wrong == 0);
}

}  // namespace
}  // namespace zerorun
