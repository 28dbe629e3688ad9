// GPU test (label gpu; needs a CUDA device): the AdamW kernel against the CPU reference.
#include <catch2/catch.hpp>
#include <vector>

#include "zerorun/adamw.h"
#include "zerorun/build_info.h"
#include "zerorun/cuda_kernels.h"

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

}  // namespace
}  // namespace zerorun
