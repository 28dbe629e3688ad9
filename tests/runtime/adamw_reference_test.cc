// CPU reference AdamW against values computed by hand from torch.optim.AdamW's formula.
#include <catch2/catch.hpp>
#include <cmath>

#include "zerorun/adamw.h"
#include "zerorun/build_info.h"

namespace zerorun {
namespace {

TEST_CASE("AdamW reference first step moves each parameter by about lr against the gradient",
          "[adamw]") {
  AdamWHyper h{.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
  float p[3] = {1.0f, -2.0f, 0.5f};
  const float g[3] = {0.3f, -4.0f, 0.0f};
  float m[3] = {}, v[3] = {};
  AdamWStepReference(h, 1, 3, p, g, m, v);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps).
  CHECK(p[0] == Approx(0.9f).epsilon(1e-6));
  CHECK(p[1] == Approx(-1.9f).epsilon(1e-6));
  CHECK(p[2] == 0.5f);
  CHECK(m[0] == Approx(0.03f));
  CHECK(v[1] == Approx(0.016f).epsilon(1e-4));  // (1 - 0.999f) rounds in float.
}

TEST_CASE("AdamW reference applies decoupled weight decay before the update", "[adamw]") {
  AdamWHyper h{.lr = 0.01f, .weight_decay = 0.5f};
  float p[1] = {2.0f};
  const float g[1] = {0.0f};
  float m[1] = {}, v[1] = {};
  AdamWStepReference(h, 1, 1, p, g, m, v);
  CHECK(p[0] == Approx(2.0f * (1 - 0.01f * 0.5f)));
}

TEST_CASE("AdamW reference second step uses bias corrections of step 2", "[adamw]") {
  AdamWHyper h{.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
  float p[1] = {0.0f}, m[1] = {}, v[1] = {};
  const float g1[1] = {1.0f}, g2[1] = {-1.0f};
  AdamWStepReference(h, 1, 1, p, g1, m, v);
  AdamWStepReference(h, 2, 1, p, g2, m, v);
  const double m2 = 0.9 * 0.1 - 0.1, v2 = 0.999 * 0.001 + 0.001;
  const double expected =
      -1e-3 - 1e-3 / (1 - 0.81) * m2 / (std::sqrt(v2) / std::sqrt(1 - 0.998001) + 1e-8);
  CHECK(p[0] == Approx(expected).epsilon(1e-5));
}

TEST_CASE("Build info reports the version and whether CUDA is in the build", "[build]") {
  const BuildInfo info = GetBuildInfo();
  CHECK(info.version == "0.1.0");
  CHECK(info.with_cuda == !info.nccl_version.empty());
  absl::StatusOr<int> gpus = CudaDeviceCount();
  if (info.with_cuda) {
    REQUIRE(gpus.ok());  // No driver here means 0 GPUs, never an error or a crash.
    CHECK(*gpus >= 0);
  } else {
    CHECK(gpus.status().code() == absl::StatusCode::kUnimplemented);
  }
}

}  // namespace
}  // namespace zerorun
