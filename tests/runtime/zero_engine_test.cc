// ZeRO stages 0-2 at world sizes 1-4 against a single-process reference: plain AdamW over the
// unsharded parameters with the rank-averaged gradient, with accumulation and clipping.
#include "zerorun/zero_engine.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <thread>

namespace zerorun {
namespace {

// Uneven tensor sizes so shards cut through tensors and units need padding.
const std::vector<UnitSpec> kUnits = {
    {"embed", {{"w", {13, 7}}, {"b", {5}}}},
    {"block", {{"w", {33}}, {"b", {3}}, {"g", {2, 9}}}},
    {"head", {{"w", {17}}}},
};

float Init(size_t unit, size_t tensor, size_t i) {
  return std::sin(0.37f * static_cast<float>(i + 11 * tensor + 101 * unit));
}

// The gradient rank `rank` computes at micro-step `micro` of step `step` for current params p:
// a quadratic pull towards a rank-specific target, so ranks disagree and averaging matters.
float Grad(int rank, int step, int micro, float p, size_t i) {
  const float target = 0.1f * static_cast<float>(rank + 1) * std::cos(0.05f * (i + step + micro));
  return 2.0f * (p - target) + 0.01f * static_cast<float>(micro);
}

struct Run {
  std::vector<std::vector<float>> params;  // Per tensor, flattened in unit/tensor order.
  std::vector<float> norms;
  MemoryReport memory;
};

Run RunEngine(int world, const ZeroOptions& options, int steps) {
  InMemoryKvStore store;
  std::vector<Run> runs(world);
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, world, {});
      if (!comm.ok()) {
        status[r] = comm.status();
        return;
      }
      auto engine = ZeroEngine::Create(kUnits, options, comm->get());
      if (!engine.ok()) {
        status[r] = engine.status();
        return;
      }
      ZeroEngine& e = **engine;
      const Layout& layout = e.layout();
      for (size_t u = 0; u < kUnits.size(); ++u) {
        for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
          float* p = e.Tensor(u, t);
          for (size_t i = 0; i < layout.units()[u].tensors[t].numel; ++i) p[i] = Init(u, t, i);
        }
      }
      for (int step = 1; step <= steps; ++step) {
        for (int micro = 0; micro < options.gradient_accumulation_steps; ++micro) {
          for (size_t u = kUnits.size(); u-- > 0;) {  // Backward order.
            absl::StatusOr<float*> g = e.Grads(u);
            if (!g.ok()) {
              status[r] = g.status();
              return;
            }
            for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
              const TensorLayout& tl = layout.units()[u].tensors[t];
              for (size_t i = 0; i < tl.numel; ++i) {
                (*g)[tl.offset + i] += Grad(r, step, micro, e.Tensor(u, t)[i], i);
              }
            }
            if (absl::Status s = e.GradsReady(u); !s.ok()) {
              status[r] = s;
              return;
            }
          }
        }
        absl::StatusOr<StepResult> result = e.Step(step, options.adam.lr);
        if (!result.ok()) {
          status[r] = result.status();
          return;
        }
        runs[r].norms.push_back(result->grad_norm);
      }
      for (size_t u = 0; u < kUnits.size(); ++u) {
        for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
          const float* p = e.Tensor(u, t);
          runs[r].params.emplace_back(p, p + layout.units()[u].tensors[t].numel);
        }
      }
      runs[r].memory = e.Memory();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << status[r].ToString());
    REQUIRE(status[r].ok());
    REQUIRE(runs[r].params == runs[0].params);  // Every rank ends with the same parameters.
  }
  return runs[0];
}

// The same training on one process, no sharding, no padding.
Run Reference(int world, const ZeroOptions& options, int steps) {
  Run run;
  std::vector<std::vector<float>> m, v;
  for (size_t u = 0; u < kUnits.size(); ++u) {
    for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
      size_t n = 1;
      for (int64_t d : kUnits[u].tensors[t].shape) n *= static_cast<size_t>(d);
      std::vector<float> p(n);
      for (size_t i = 0; i < n; ++i) p[i] = Init(u, t, i);
      run.params.push_back(p);
      m.emplace_back(n, 0.0f);
      v.emplace_back(n, 0.0f);
    }
  }
  const int ga = options.gradient_accumulation_steps;
  for (int step = 1; step <= steps; ++step) {
    std::vector<std::vector<double>> g(run.params.size());
    double sq = 0;
    for (size_t k = 0; k < run.params.size(); ++k) {
      g[k].assign(run.params[k].size(), 0.0);
      for (size_t i = 0; i < run.params[k].size(); ++i) {
        for (int micro = 0; micro < ga; ++micro) {
          for (int r = 0; r < world; ++r) g[k][i] += Grad(r, step, micro, run.params[k][i], i);
        }
        g[k][i] /= static_cast<double>(world) * ga;
        sq += g[k][i] * g[k][i];
      }
    }
    const float norm = static_cast<float>(std::sqrt(sq));
    run.norms.push_back(norm);
    const float coef = options.gradient_clipping > 0
                           ? std::min(1.0f, options.gradient_clipping / (norm + 1e-6f))
                           : 1.0f;
    for (size_t k = 0; k < run.params.size(); ++k) {
      std::vector<float> gf(g[k].size());
      for (size_t i = 0; i < gf.size(); ++i) gf[i] = static_cast<float>(g[k][i]) * coef;
      AdamWStepReference(options.adam, step, gf.size(), run.params[k].data(), gf.data(),
                         m[k].data(), v[k].data());
    }
  }
  return run;
}

void RequireMatches(const Run& got, const Run& want) {
  REQUIRE(got.norms.size() == want.norms.size());
  for (size_t s = 0; s < got.norms.size(); ++s) {
    REQUIRE(got.norms[s] == Approx(want.norms[s]).epsilon(1e-5));
  }
  REQUIRE(got.params.size() == want.params.size());
  for (size_t k = 0; k < got.params.size(); ++k) {
    for (size_t i = 0; i < got.params[k].size(); ++i) {
      // Sums in another order differ by float rounding; AdamW steps are ~lr = 1e-2 here.
      REQUIRE(got.params[k][i] == Approx(want.params[k][i]).margin(2e-5));
    }
  }
}

TEST_CASE("ZeRO stages 0, 1, 2 at world 1-4 match the unsharded AdamW reference",
          "[zero][multirank]") {
  for (int stage = 0; stage <= 2; ++stage) {
    for (int world = 1; world <= 4; ++world) {
      for (int ga : {1, 3}) {
        for (float clip : {0.0f, 0.5f}) {
          INFO("stage " << stage << " world " << world << " ga " << ga << " clip " << clip);
          ZeroOptions options;
          options.stage = stage;
          options.adam.lr = 1e-2f;
          options.gradient_accumulation_steps = ga;
          options.gradient_clipping = clip;
          options.align = 4;
          RequireMatches(RunEngine(world, options, 4), Reference(world, options, 4));
        }
      }
    }
  }
}

TEST_CASE("Per-rank model-state bytes follow the ZeRO formulas plus exact padding",
          "[zero][memory]") {
  for (int world : {1, 2, 3, 4}) {
    absl::StatusOr<Layout> layout = Layout::Build(kUnits, world, 4);
    REQUIRE(layout.ok());
    const size_t p = layout->padded_params() * 4;  // Padded fp32 bytes: "4P".
    for (int stage = 0; stage <= 2; ++stage) {
      INFO("stage " << stage << " world " << world);
      ZeroOptions options;
      options.stage = stage;
      options.align = 4;
      const MemoryReport m = RunEngine(world, options, 1).memory;
      const size_t n = static_cast<size_t>(world);
      CHECK(m.params == p);
      if (stage == 0) {
        CHECK(m.total() == 4 * p);  // 16P in fp32.
      } else if (stage == 1) {
        CHECK(m.grads == p);
        CHECK(m.optimizer == 2 * p / n);  // 8P + 8P/N.
      } else {
        CHECK(m.grads == p / n);
        CHECK(m.optimizer == 2 * p / n);  // 4P + 12P/N, plus the scratch slots.
        size_t max_unit = 0;
        for (const UnitLayout& u : layout->units()) max_unit = std::max(max_unit, u.padded);
        CHECK(m.scratch == options.grad_slots * max_unit * 4);
      }
    }
  }
}

TEST_CASE("Stage 2 misuse is an error, not a silent wrong result", "[zero]") {
  InMemoryKvStore store;
  auto comm = CreateGlooCommunicator(store, 0, 1, {});
  REQUIRE(comm.ok());
  ZeroOptions options;
  options.stage = 2;
  options.grad_slots = 1;
  auto engine = ZeroEngine::Create(kUnits, options, comm->get());
  REQUIRE(engine.ok());
  REQUIRE((*engine)->Grads(0).ok());
  CHECK((*engine)->Grads(1).status().code() == absl::StatusCode::kResourceExhausted);
  CHECK((*engine)->Step(1, 1e-3f).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK((*engine)->GradsReady(2).code() == absl::StatusCode::kFailedPrecondition);
  options.stage = 3;
  CHECK(ZeroEngine::Create(kUnits, options, comm->get()).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace zerorun

namespace zerorun {
namespace {

TEST_CASE("Acquire guards refcount, nest for tied weights and record the first step's order",
          "[zero][acquire]") {
  InMemoryKvStore store;
  auto comm = CreateGlooCommunicator(store, 0, 1, {});
  REQUIRE(comm.ok());
  auto engine = ZeroEngine::Create(kUnits, {}, comm->get());
  REQUIRE(engine.ok());
  ZeroEngine& e = **engine;
  {
    absl::StatusOr<UnitGuard> embed = e.Acquire(0, Pass::kForward);
    REQUIRE(embed.ok());
    CHECK(embed->tensor(1) == e.Tensor(0, 1));
    CHECK(embed->tensors().size() == 2);
    {
      absl::StatusOr<UnitGuard> tied = e.Acquire(0, Pass::kForward);  // The same unit again.
      REQUIRE(tied.ok());
      CHECK(e.live_guards(0) == 2);
    }
    CHECK(e.live_guards(0) == 1);
    absl::StatusOr<UnitGuard> head = e.Acquire(2, Pass::kBackward);
    REQUIRE(head.ok());
    UnitGuard moved = *std::move(head);
    CHECK(e.live_guards(2) == 1);
  }
  CHECK(e.live_guards(0) == 0);
  CHECK(e.live_guards(2) == 0);
  CHECK(e.Acquire(7, Pass::kForward).status().code() == absl::StatusCode::kInvalidArgument);
  using Entry = std::pair<size_t, Pass>;
  CHECK(e.acquire_order() ==
        std::vector<Entry>{{0, Pass::kForward}, {0, Pass::kForward}, {2, Pass::kBackward}});
  REQUIRE(e.Step(1, 1e-3f).ok());
  REQUIRE(e.Acquire(1, Pass::kForward).ok());
  CHECK(e.acquire_order().size() == 3);  // Only the first step is recorded.
}

}  // namespace
}  // namespace zerorun
