// The ZeRO engine, stages 0-3, fp32 and bf16/fp16, at world sizes 1-4 against a single-process
// reference (plain AdamW over the unsharded parameters with the rank-averaged gradient, with
// accumulation and clipping); memory formulas, loss scaling, stage-3 gathers and init.
#include "zerorun/zero_engine.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "support/temp_dir.h"
#include "zerorun/checkpoint.h"
#include "zerorun/counter_rng.h"

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
  std::vector<float> mean_values;  // Step()'s rank + 1, averaged over the ranks.
  MemoryReport memory;
  GatherStats stats;
  bool working_is_rounded_master = true;  // 16-bit: every working weight == RNE(master).
};

// How the ranks drive the engine: a forward pass over the units, then a backward pass that
// reads each unit's parameters under a guard and adds Grad() into Grads(u).
struct Drive {
  bool tied = false;          // Unit 0 is used twice: nested guard, two gradient rounds.
  int reorder_from_step = 0;  // From this step on, the forward pass runs in reverse order.
  std::string ckpt_dir;       // With save_at: save a checkpoint there after that step.
  int save_at = 0;
  bool save_every_step = false;  // Save after every step instead, keeping the newest keep_last.
  int keep_last = 0;
  bool resume = false;      // Load the latest checkpoint of ckpt_dir and go on from its step.
  bool async_save = false;  // StartCheckpoint, polled after every later step, waited at the end.
};

absl::Status TrainRank(ZeroEngine& e, Communicator& comm, int r, const ZeroOptions& options,
                       int steps, const Drive& drive, Run* run) {
  const Layout& layout = e.layout();
  const size_t units = kUnits.size();
  e.Init([](size_t u, size_t t, size_t begin, size_t end, float* out) {
    for (size_t i = begin; i < end; ++i) out[i - begin] = Init(u, t, i);
  });
  int first_step = 1;
  if (drive.resume) {
    absl::StatusOr<std::string> state = LoadCheckpoint(e, comm, drive.ckpt_dir, "");
    if (!state.ok()) return state.status();
    const size_t at = state->find("\"step\":");
    first_step = std::atoi(state->c_str() + at + 7) + 1;
  }
  std::unique_ptr<PendingSave> pending;
  for (int step = first_step; step <= steps; ++step) {
    for (int micro = 0; micro < options.gradient_accumulation_steps; ++micro) {
      const bool reverse = drive.reorder_from_step > 0 && step >= drive.reorder_from_step;
      for (size_t k = 0; k < units; ++k) {
        absl::StatusOr<UnitGuard> g = e.Acquire(reverse ? units - 1 - k : k, Pass::kForward);
        if (!g.ok()) return g.status();
      }
      for (size_t u = units; u-- > 0;) {  // Backward order.
        absl::StatusOr<UnitGuard> guard = e.Acquire(u, Pass::kBackward);
        if (!guard.ok()) return guard.status();
        const int rounds = drive.tied && u == 0 ? 2 : 1;
        for (int round = 0; round < rounds; ++round) {
          std::optional<absl::StatusOr<UnitGuard>> tied;
          if (round == 1) tied.emplace(e.Acquire(u, Pass::kBackward));  // Nested.
          const float share = (rounds == 1 ? 1.0f : round == 0 ? 0.25f : 0.75f) * e.loss_scale();
          absl::StatusOr<float*> g = e.Grads(u);
          if (!g.ok()) return g.status();
          for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
            const TensorLayout& tl = layout.units()[u].tensors[t];
            for (size_t i = 0; i < tl.numel; ++i) {
              (*g)[tl.offset + i] += share * Grad(r, step, micro, guard->tensor(t)[i], i);
            }
          }
          if (absl::Status s = e.GradsReady(u); !s.ok()) return s;
        }
      }
    }
    absl::StatusOr<StepResult> result = e.Step(step, options.adam.lr, static_cast<float>(r + 1));
    if (!result.ok()) return result.status();
    run->norms.push_back(result->grad_norm);
    run->mean_values.push_back(result->mean_value);
    if (pending != nullptr) {
      if (absl::StatusOr<bool> done = pending->Poll(comm); !done.ok()) return done.status();
    }
    const std::string client = absl::StrCat("{\"step\": ", step, "}");
    if (step == drive.save_at && drive.async_save) {
      absl::StatusOr<std::unique_ptr<PendingSave>> started =
          StartCheckpoint(e, comm, drive.ckpt_dir, DefaultTag(step), client, "{}");
      if (!started.ok()) return started.status();
      pending = *std::move(started);
    } else if (step == drive.save_at || (drive.save_every_step && !drive.ckpt_dir.empty())) {
      if (absl::Status s = SaveCheckpoint(e, comm, drive.ckpt_dir, DefaultTag(step), client, "{}",
                                          SaveOptions{drive.keep_last});
          !s.ok()) {
        return s;
      }
    }
  }
  if (pending != nullptr) {
    if (absl::Status s = pending->Wait(comm); !s.ok()) return s;
  }
  for (size_t u = 0; u < units; ++u) {
    absl::StatusOr<UnitGuard> guard = e.Acquire(u, Pass::kForward);
    if (!guard.ok()) return guard.status();
    for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
      std::vector<float> p(layout.units()[u].tensors[t].numel);
      if (absl::Status s = e.GetTensor(u, t, p.data()); !s.ok()) return s;
      for (size_t i = 0; i < p.size() && options.dtype != DType::kFp32; ++i) {
        const float rounded = options.dtype == DType::kBf16 ? Bf16ToFloat(FloatToBf16(p[i]))
                                                            : Fp16ToFloat(FloatToFp16(p[i]));
        run->working_is_rounded_master &= guard->tensor(t)[i] == rounded;
      }
      run->params.push_back(std::move(p));
    }
  }
  run->memory = e.Memory();
  run->stats = e.gather_stats();
  return absl::OkStatus();
}

Run RunEngine(int world, const ZeroOptions& options, int steps, const Drive& drive = {}) {
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
      status[r] = engine.ok() ? TrainRank(**engine, **comm, r, options, steps, drive, &runs[r])
                              : engine.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << status[r].ToString());
    REQUIRE(status[r].ok());
    REQUIRE(runs[r].params == runs[0].params);  // Every rank ends with the same parameters.
    REQUIRE(runs[r].working_is_rounded_master);
    for (float mean : runs[r].mean_values) REQUIRE(mean == (world + 1) / 2.0f);
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

// `margin`: 2e-5 for fp32 (sums in another order differ by rounding; AdamW steps are ~lr = 1e-2
// here); 16-bit runs compute gradients from rounded weights and reduce in 16 bits.
void RequireMatches(const Run& got, const Run& want, double margin = 2e-5) {
  REQUIRE(got.norms.size() == want.norms.size());
  for (size_t s = 0; s < got.norms.size(); ++s) {
    REQUIRE(got.norms[s] == Approx(want.norms[s]).epsilon(margin < 1e-4 ? 1e-5 : 1e-2));
  }
  REQUIRE(got.params.size() == want.params.size());
  for (size_t k = 0; k < got.params.size(); ++k) {
    for (size_t i = 0; i < got.params[k].size(); ++i) {
      REQUIRE(got.params[k][i] == Approx(want.params[k][i]).margin(margin));
    }
  }
}

// Stage 3 options that shard every unit but the 17-element head, gather at most ~3 units ahead
// and keep few units live, so eviction, persistence and prefetch all happen.
ZeroOptions Stage3(bool overlap) {
  ZeroOptions o;
  o.stage = 3;
  o.overlap_comm = overlap;
  o.param_persistence_threshold = 20;
  o.prefetch_bucket_size = 200;
  o.max_live_parameters = 300;
  o.max_reuse_distance = 50;
  return o;
}

TEST_CASE("ZeRO stages 0-3 at world 1-4 match the unsharded AdamW reference", "[zero][multirank]") {
  // (stage, overlap_comm): communication inline, or on the engine's thread (stages 1-3).
  const std::pair<int, bool> variants[] = {{0, false}, {1, false}, {2, false}, {3, false},
                                           {1, true},  {2, true},  {3, true}};
  for (const auto& [stage, overlap] : variants) {
    for (int world = 1; world <= 4; ++world) {
      for (int ga : {1, 3}) {
        for (float clip : {0.0f, 0.5f}) {
          INFO("stage " << stage << " overlap " << overlap << " world " << world << " ga " << ga
                        << " clip " << clip);
          ZeroOptions options = stage < 3 ? ZeroOptions{} : Stage3(overlap);
          options.stage = stage;
          options.overlap_comm = overlap;
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

TEST_CASE("bf16 and fp16 working weights with fp32 masters track the fp32 reference",
          "[zero][multirank][mixed]") {
  for (DType dtype : {DType::kBf16, DType::kFp16}) {
    for (int stage = 0; stage <= 3; ++stage) {
      for (int world : {1, 2, 3}) {
        INFO(DTypeName(dtype) << " stage " << stage << " world " << world);
        ZeroOptions options = stage < 3 ? ZeroOptions{} : Stage3(true);
        options.stage = stage;
        options.dtype = dtype;
        options.adam.lr = 1e-2f;
        options.gradient_accumulation_steps = 2;
        options.gradient_clipping = 0.5f;
        options.align = 4;
        options.loss_scale.initial_scale_power = 8;  // Gradients here reach ~2; 2^16 overflows.
        // Gradients come from rounded weights (bf16: 8 significant bits): a few % of a step.
        RequireMatches(RunEngine(world, options, 4), Reference(world, options, 4),
                       dtype == DType::kBf16 ? 2e-3 : 3e-4);
      }
    }
  }
}

TEST_CASE("Per-rank model-state bytes follow the ZeRO formulas plus exact padding",
          "[zero][memory]") {
  for (int world : {1, 2, 3, 4}) {
    absl::StatusOr<Layout> layout = Layout::Build(kUnits, world, 4);
    REQUIRE(layout.ok());
    const size_t p = layout->padded_params();  // Padded elements: "P".
    const size_t n = static_cast<size_t>(world);
    size_t max_unit = 0;
    for (const UnitLayout& u : layout->units()) max_unit = std::max(max_unit, u.padded);
    for (DType dtype : {DType::kFp32, DType::kBf16}) {
      for (int stage = 0; stage <= 3; ++stage) {
        INFO(DTypeName(dtype) << " stage " << stage << " world " << world);
        ZeroOptions options = stage < 3 ? ZeroOptions{} : Stage3(false);
        options.stage = stage;
        options.dtype = dtype;
        options.align = 4;
        options.param_persistence_threshold = 0;  // Every unit sharded in stage 3.
        const MemoryReport m = RunEngine(world, options, 1).memory;
        const size_t want[2][4] = {// fp32: 16P, 8P + 8P/N, 4P + 12P/N, 16P/N.
                                   {16 * p, 8 * p + 8 * p / n, 4 * p + 12 * p / n, 16 * p / n},
                                   // Mixed precision: 16P, 4P + 12P/N, 2P + 14P/N, 16P/N.
                                   {16 * p, 4 * p + 12 * p / n, 2 * p + 14 * p / n, 16 * p / n}};
        CHECK(m.model_states() == want[dtype == DType::kFp32 ? 0 : 1][stage]);
        CHECK(m.master == (dtype == DType::kFp32 ? 0 : 4 * (stage == 0 ? p : p / n)));
        // Working buffers beyond model states: one gradient slot (fp32, plus a 16-bit staging
        // area for 16-bit reduces) and parameter slots of one unit each; stage 3 keeps them
        // within max_live_parameters (plus one unit: the limit is soft for on-demand gathers).
        const size_t slot = max_unit * (dtype == DType::kFp32 ? 4 : 6);
        if (dtype != DType::kFp32 || stage >= 2) CHECK(m.scratch <= 2 * slot);
        if (stage == 3) {
          CHECK(m.live > 0);
          CHECK(m.live <= (options.max_live_parameters / max_unit + 1) * slot);
        }
      }
    }
  }
}

TEST_CASE("fp16 overflow skips the step on every rank and lowers the scale with hysteresis",
          "[zero][mixed]") {
  LossScaleOptions ls;  // DeepSpeed defaults: 2^16, window 1000, hysteresis 2, min 1.
  LossScaler scaler(ls);
  CHECK(scaler.scale() == 65536.0f);
  scaler.Update(true);  // First overflow: hysteresis absorbs it.
  CHECK(scaler.scale() == 65536.0f);
  scaler.Update(true);
  CHECK(scaler.scale() == 32768.0f);
  scaler.Update(true);
  CHECK(scaler.scale() == 16384.0f);
  for (int i = 0; i < 999; ++i) scaler.Update(false);
  CHECK(scaler.scale() == 16384.0f);
  scaler.Update(false);  // 1000 clean steps since the last overflow.
  CHECK(scaler.scale() == 32768.0f);
  LossScaleOptions fixed;
  fixed.loss_scale = 128;
  LossScaler static_scaler(fixed);
  static_scaler.Update(true);
  CHECK(static_scaler.scale() == 128.0f);
  CHECK(LossScaler().scale() == 1.0f);

  // The engine: gradients of 2 x 2^16 overflow fp16 (max 65504); nothing changes but the scale.
  InMemoryKvStore store;
  const int world = 2;
  std::vector<std::vector<float>> before(world), after(world);
  std::vector<std::vector<StepResult>> results(world);
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, world, {});
      ZeroOptions options;
      options.stage = 2;
      options.dtype = DType::kFp16;
      options.loss_scale.hysteresis = 1;
      auto engine = ZeroEngine::Create(kUnits, options, comm->get());
      ZeroEngine& e = **engine;
      e.Init([](size_t u, size_t t, size_t b, size_t end, float* out) {
        for (size_t i = b; i < end; ++i) out[i - b] = Init(u, t, i);
      });
      before[r].resize(13 * 7);
      after[r].resize(13 * 7);
      status[r].Update(e.GetTensor(0, 0, before[r].data()));
      for (int step = 1; step <= 3; ++step) {
        for (size_t u = kUnits.size(); u-- > 0;) {
          float* g = *e.Grads(u);
          // Rank 1 alone overflows at step 1; the skip must still be collective.
          const float value = (r == 1 && step == 1) ? 2.0f : 1e-3f;
          for (size_t i = 0; i < e.layout().units()[u].numel; ++i) g[i] = value * e.loss_scale();
          status[r].Update(e.GradsReady(u));
        }
        results[r].push_back(*e.Step(step, 1e-2f));
        if (step == 1) status[r].Update(e.GetTensor(0, 0, after[r].data()));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    REQUIRE(status[r].ok());
    CHECK(results[r][0].skipped);
    CHECK(results[r][0].loss_scale == 32768.0f);
    CHECK(after[r] == before[r]);  // The overflowing step changed nothing.
    CHECK_FALSE(results[r][1].skipped);
    CHECK_FALSE(results[r][2].skipped);
    CHECK(results[r][2].grad_norm == Approx(results[r][1].grad_norm).epsilon(1e-2));
  }
}

TEST_CASE("Stage 3: tied weights, a changed acquire order and prefetch give correct results",
          "[zero][stage3]") {
  for (bool overlap : {false, true}) {
    for (int world : {2, 3}) {
      INFO("overlap " << overlap << " world " << world);
      ZeroOptions options = Stage3(overlap);
      options.adam.lr = 1e-2f;
      options.align = 4;
      const Run want = Reference(world, options, 4);
      const Run tied = RunEngine(world, options, 4, Drive{.tied = true});
      RequireMatches(tied, want);
      CHECK(tied.stats.order_consistent);
      // A steady order prefetches (with a communication thread) and never misses.
      CHECK(tied.stats.prefetch_misses == 0);
      if (overlap) CHECK(tied.stats.prefetched > 0);
      // From step 3 the forward pass runs backwards: one miss, then on-demand gathers.
      const Run reordered = RunEngine(world, options, 4, Drive{.reorder_from_step = 3});
      RequireMatches(reordered, want);
      CHECK(reordered.stats.prefetch_misses == 1);
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
  options.stage = 4;
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
    CHECK(embed->tensor(1) - embed->tensor(0) ==
          static_cast<ptrdiff_t>(e.layout().units()[0].tensors[1].offset));
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

namespace zerorun {
namespace {

TEST_CASE("Stage 3 initialises on the shard: bit-identical at any world size, slice only",
          "[zero][stage3]") {
  std::vector<std::vector<float>> by_world;
  for (int world : {1, 2, 3}) {
    InMemoryKvStore store;
    std::vector<std::vector<float>> values(world);
    std::vector<size_t> filled(world, 0);
    std::vector<absl::Status> status(world);
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        auto comm = CreateGlooCommunicator(store, r, world, {});
        ZeroOptions options = Stage3(false);
        options.param_persistence_threshold = 0;
        auto engine = ZeroEngine::Create(kUnits, options, comm->get());
        ZeroEngine& e = **engine;
        e.Init([&](size_t u, size_t t, size_t begin, size_t end, float* out) {
          filled[r] += end - begin;
          for (size_t i = begin; i < end; ++i) out[i - begin] = CounterNormal(7, u * 16 + t, i);
        });
        for (size_t u = 0; u < kUnits.size(); ++u) {
          for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
            std::vector<float> p(e.layout().units()[u].tensors[t].numel);
            status[r].Update(e.GetTensor(u, t, p.data()));
            values[r].insert(values[r].end(), p.begin(), p.end());
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    size_t total = 0;
    for (int r = 0; r < world; ++r) {
      REQUIRE(status[r].ok());
      REQUIRE(values[r] == values[0]);
      total += filled[r];
    }
    CHECK(total == values[0].size());  // Each element computed once, by the rank that owns it.
    by_world.push_back(values[0]);
  }
  CHECK(by_world[1] == by_world[0]);
  CHECK(by_world[2] == by_world[0]);
}

}  // namespace
}  // namespace zerorun

namespace zerorun {
namespace {

TEST_CASE("A peer that leaves mid-step fails the step with a clear error, never a hang",
          "[zero][overlap]") {
  for (int stage : {2, 3}) {
    INFO("stage " << stage);
    InMemoryKvStore store;
    CommOptions comm_options;
    comm_options.timeout = absl::Seconds(5);
    absl::Status survivor;
    std::thread leaver([&] {
      auto comm = CreateGlooCommunicator(store, 1, 2, comm_options);
      ZeroOptions options = stage == 3 ? Stage3(true) : ZeroOptions{};
      options.overlap_comm = true;
      auto engine = ZeroEngine::Create(kUnits, options, comm->get());
      // Reduces the head's gradients with its peer, then leaves: engine and sockets go away.
      for (size_t u = 0; u < 3; ++u) (void)(*engine)->Acquire(u, Pass::kForward);
      float* g = *(*engine)->Grads(2);
      g[0] = 1;
      (void)(*engine)->GradsReady(2);
    });
    {
      auto comm = CreateGlooCommunicator(store, 0, 2, comm_options);
      ZeroOptions options = stage == 3 ? Stage3(true) : ZeroOptions{};
      options.overlap_comm = true;
      auto engine = ZeroEngine::Create(kUnits, options, comm->get());
      ZeroEngine& e = **engine;
      for (size_t u = 0; u < 3; ++u) survivor.Update(e.Acquire(u, Pass::kForward).status());
      for (size_t u = 3; u-- > 0 && survivor.ok();) {
        absl::StatusOr<float*> g = e.Grads(u);
        survivor.Update(g.status());
        if (g.ok()) survivor.Update(e.GradsReady(u));
      }
      if (survivor.ok()) survivor.Update(e.Step(1, 1e-3f).status());
    }
    leaver.join();
    INFO(survivor.ToString());
    CHECK((survivor.code() == absl::StatusCode::kAborted ||
           survivor.code() == absl::StatusCode::kDeadlineExceeded));
    CHECK_THAT(std::string(survivor.message()), Catch::Contains("rank 0 of 2"));
  }
}

TEST_CASE(
    "Save at step 3 and resume to step 6 is bit-identical to 6 steps straight, every "
    "stage and dtype",
    "[zero][checkpoint]") {
  for (const DType dtype : {DType::kFp32, DType::kBf16, DType::kFp16}) {
    for (int stage = 0; stage <= 3; ++stage) {
      INFO("stage " << stage << " " << DTypeName(dtype));
      ZeroOptions options;
      options.stage = stage;
      options.dtype = dtype;
      options.gradient_accumulation_steps = 2;
      options.gradient_clipping = 1.0f;
      options.param_persistence_threshold = 20;  // Stage 3: persistent and partitioned units.
      testing::TempDir dir;
      const Run straight = RunEngine(2, options, 6);
      Drive save;
      save.ckpt_dir = dir.path() + "/ckpt";
      save.save_at = 3;
      RunEngine(2, options, 3, save);
      std::ifstream latest(save.ckpt_dir + "/latest");
      std::string tag;
      REQUIRE(latest >> tag);
      CHECK(tag == "global_step3");
      Drive resume;
      resume.ckpt_dir = save.ckpt_dir;
      resume.resume = true;
      const Run resumed = RunEngine(2, options, 6, resume);
      CHECK(resumed.params == straight.params);
      REQUIRE(resumed.norms.size() == 3);
      for (int k = 0; k < 3; ++k) CHECK(resumed.norms[k] == straight.norms[3 + k]);
    }
  }
}

TEST_CASE(
    "An asynchronous save at step 3 holds step 3's state while training goes on, and resumes "
    "bit-identically",
    "[zero][checkpoint]") {
  for (int stage : {1, 3}) {
    INFO("stage " << stage);
    ZeroOptions options;
    options.stage = stage;
    options.gradient_clipping = 1.0f;
    testing::TempDir dir;
    const Run straight = RunEngine(2, options, 6);
    Drive save;
    save.ckpt_dir = dir.path() + "/ckpt";
    save.save_at = 3;
    save.async_save = true;
    const Run saving = RunEngine(2, options, 6, save);
    CHECK(saving.params == straight.params);  // The save changed nothing of the training.
    std::ifstream latest(save.ckpt_dir + "/latest");
    std::string tag;
    REQUIRE(latest >> tag);
    CHECK(tag == "global_step3");
    CHECK_FALSE(std::filesystem::exists(save.ckpt_dir + "/global_step3.tmp"));
    Drive resume;
    resume.ckpt_dir = save.ckpt_dir;
    resume.resume = true;
    const Run resumed = RunEngine(2, options, 6, resume);
    CHECK(resumed.params == straight.params);
  }
}

TEST_CASE("A corrupt shard or another model is refused, naming it", "[zero][checkpoint]") {
  ZeroOptions options;
  options.stage = 2;
  testing::TempDir dir;
  Drive save;
  save.ckpt_dir = dir.path() + "/ckpt";
  save.save_at = 2;
  RunEngine(2, options, 2, save);
  // Another model: FailedPrecondition naming the unit.
  {
    InMemoryKvStore store;
    auto comm = CreateGlooCommunicator(store, 0, 1, {});
    REQUIRE(comm.ok());
    std::vector<UnitSpec> other = kUnits;
    other[1].tensors[0].shape = {34};
    auto engine = ZeroEngine::Create(other, options, comm->get());
    REQUIRE(engine.ok());
    absl::StatusOr<std::string> loaded = LoadCheckpoint(**engine, **comm, save.ckpt_dir, "");
    CHECK(loaded.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(loaded.status().message()),
               Catch::Contains("is of another model: unit block"));
  }
  {
    const std::string shard = save.ckpt_dir + "/global_step2/zero_rank_1.bin";
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.put('\x7f');
  }
  InMemoryKvStore store;
  std::vector<absl::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, 2, {});
      auto engine = ZeroEngine::Create(kUnits, options, comm->get());
      status[r] = LoadCheckpoint(**engine, **comm, save.ckpt_dir, "").status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    CHECK(status[r].code() != absl::StatusCode::kOk);
    CHECK_THAT(std::string(status[r].message()), Catch::Contains("rank(s) 1"));
  }
  CHECK_THAT(std::string(status[1].message()),
             Catch::Contains("zero_rank_1.bin does not match its sha256"));
}

TEST_CASE("keep_last keeps the newest checkpoints, and latest names the newest",
          "[zero][checkpoint]") {
  ZeroOptions options;
  options.stage = 3;
  testing::TempDir dir;
  Drive drive;
  drive.ckpt_dir = dir.path() + "/ckpt";
  drive.save_every_step = true;
  drive.keep_last = 2;
  RunEngine(2, options, 5, drive);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(drive.ckpt_dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"global_step4", "global_step5", "latest"});
}

TEST_CASE("A checkpoint loads at another world size, stage and working dtype (resharding)",
          "[zero][checkpoint]") {
  ZeroOptions saved;
  saved.stage = 2;
  saved.dtype = DType::kBf16;
  testing::TempDir dir;
  Drive save;
  save.ckpt_dir = dir.path() + "/ckpt";
  save.save_at = 3;
  const Run at_save = RunEngine(2, saved, 3, save);
  struct Target {
    int world, stage;
    DType dtype;
  };
  for (const Target& t : {Target{3, 3, DType::kBf16}, Target{1, 1, DType::kFp32},
                          Target{4, 0, DType::kFp16}, Target{3, 2, DType::kFp32}}) {
    INFO("world " << t.world << ", stage " << t.stage << ", " << DTypeName(t.dtype));
    ZeroOptions options = saved;
    options.stage = t.stage;
    options.dtype = t.dtype;
    options.param_persistence_threshold = 20;
    Drive resume;
    resume.ckpt_dir = save.ckpt_dir;
    resume.resume = true;
    // No step after the load: the parameters are the saved fp32 masters, exactly.
    const Run loaded = RunEngine(t.world, options, 3, resume);
    CHECK(loaded.params == at_save.params);
    // And training goes on from there.
    const Run trained = RunEngine(t.world, options, 5, resume);
    CHECK(trained.norms.size() == 2);
  }
}

}  // namespace
}  // namespace zerorun
