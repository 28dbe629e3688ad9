// The ZeRO engine, stages 0-3, fp32 and bf16/fp16, at world sizes 1-4 against a single-process
// reference (plain AdamW over the unsharded parameters with the rank-averaged gradient, with
// accumulation and clipping); memory formulas and placement (offload), loss scaling, stage-3
// gathers and init. Checkpoints: checkpoint_test.cc; the harness: engine_harness.h.
#include "zerorun/zero_engine.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine_harness.h"
#include "support/temp_dir.h"
#include "zerorun/counter_rng.h"

namespace zerorun {
namespace {

using engine_harness::Drive;
using engine_harness::Grad;
using engine_harness::Init;
using engine_harness::kUnits;
using engine_harness::Reference;
using engine_harness::RequireMatches;
using engine_harness::Run;
using engine_harness::RunEngine;
using engine_harness::Stage3;

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
        // The report is what the engine's allocators hold, byte for byte, and nothing was freed
        // on the way (slots and views are pooled): the high-water mark is the same.
        CHECK(m.allocated == m.total());
        CHECK(m.peak == m.allocated);
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

TEST_CASE(
    "Offload to cpu is the same arithmetic with the state placed on the host, and what cannot be "
    "is "
    "refused",
    "[zero][memory][offload]") {
  for (int stage = 1; stage <= 3; ++stage) {
    INFO("stage " << stage);
    ZeroOptions options = stage < 3 ? ZeroOptions{} : Stage3(false);
    options.stage = stage;
    options.dtype = DType::kBf16;  // fp32 masters, m and v: 12 bytes per element offloadable.
    const Run plain = RunEngine(2, options, 3);
    options.optimizer_space = MemorySpace::kHost;
    options.optimizer_ratio = 0.5;
    options.pin_memory = true;  // The state from a pinned-host allocator (host memory on a CPU).
    if (stage == 3) options.param_space = MemorySpace::kHost;
    const Run offloaded = RunEngine(2, options, 3);
    CHECK(offloaded.params == plain.params);
    const MemoryReport& m = offloaded.memory;
    const size_t half = (m.master + m.optimizer) / 2;
    CHECK(m.host == half + (stage == 3 ? m.params : 0));
    CHECK(m.nvme == 0);
    CHECK(m.device + m.host == m.total());
    CHECK(m.allocated == m.total());
    CHECK(plain.memory.host == 0);
    CHECK(plain.memory.device == plain.memory.total());
  }
  InMemoryKvStore store;
  auto comm = CreateGlooCommunicator(store, 0, 1, {});
  REQUIRE(comm.ok());
  auto refused = [&](ZeroOptions o) { return ZeroEngine::Create(kUnits, o, comm->get()).status(); };
  ZeroOptions o;
  o.optimizer_space = MemorySpace::kNvme;  // Without an nvme_path.
  CHECK(refused(o).code() == absl::StatusCode::kInvalidArgument);
  o.optimizer_space = MemorySpace::kHost;
  o.stage = 0;
  CHECK_THAT(std::string(refused(o).message()), Catch::Contains("stage 1, 2 or 3"));
  o = ZeroOptions{};
  o.param_space = MemorySpace::kHost;  // Stage 2.
  CHECK_THAT(std::string(refused(o).message()),
             Catch::Contains("offload_param needs ZeRO stage 3"));
  o = ZeroOptions{};
  o.optimizer_space = MemorySpace::kHost;
  o.optimizer_ratio = 1.5;
  CHECK_THAT(std::string(refused(o).message()), Catch::Contains("ratio 1.5 is not in [0, 1]"));
}

TEST_CASE(
    "Optimizer state on NVMe (ZeRO-Infinity) is the in-memory training bit for bit, swapped in "
    "sub-groups, its files removed at the end",
    "[zero][offload][nvme]") {
  for (DType dtype : {DType::kFp32, DType::kBf16}) {
    for (int stage = 1; stage <= 3; ++stage) {
      INFO("stage " << stage << " " << DTypeName(dtype));
      ZeroOptions options = stage < 3 ? ZeroOptions{} : Stage3(true);
      options.stage = stage;
      options.dtype = dtype;
      options.gradient_clipping = 1.0f;
      const Run plain = RunEngine(2, options, 4);
      testing::TempDir nvme;
      options.optimizer_space = MemorySpace::kNvme;
      options.nvme_path = nvme.path();
      options.sub_group_size = 7;  // Chunks cut through units: the pipeline runs many rounds.
      options.aio.block_size = 4096;
      options.aio.queue_depth = 2;
      const Run swapped = RunEngine(2, options, 4);
      CHECK(swapped.params == plain.params);
      CHECK(swapped.norms == plain.norms);
      // Adam m and v, the masters where they are not the fp32 weights and (stages 2-3) the
      // gradient accumulator (fp32 or bf16), nothing else.
      const size_t elements = swapped.memory.optimizer / 8;
      const size_t accumulator = stage < 2 ? 0 : elements * (dtype == DType::kFp32 ? 4 : 2);
      CHECK(swapped.memory.nvme == swapped.memory.optimizer + swapped.memory.master + accumulator);
      CHECK(swapped.memory.master == (dtype == DType::kFp32 ? 0 : swapped.memory.optimizer / 2));
      CHECK(swapped.memory.device + swapped.memory.nvme == swapped.memory.total());
      CHECK(nvme.Listing().empty());  // Each rank's zerorun-<tag> directory went with it.
      // Micro-steps and a unit reduced twice per micro-step: the swapped accumulator is read,
      // added to and written back, with the in-memory accumulator's arithmetic.
      ZeroOptions in_memory = options;
      in_memory.optimizer_space = MemorySpace::kDevice;
      in_memory.gradient_accumulation_steps = options.gradient_accumulation_steps = 3;
      Drive tied;
      tied.tied = true;
      const Run accumulated = RunEngine(2, in_memory, 3, tied);
      const Run accumulated_swapped = RunEngine(2, options, 3, tied);
      CHECK(accumulated_swapped.params == accumulated.params);
      CHECK(accumulated_swapped.norms == accumulated.norms);
      // A ring of buffers (offload_optimizer.buffer_count) that reads the next step's chunks
      // during the forward and backward passes and keeps their accumulators: the same training.
      options.optimizer_buffer_count = 64;
      const Run ring_accumulated = RunEngine(2, options, 3, tied);
      CHECK(ring_accumulated.params == accumulated.params);
      CHECK(ring_accumulated.norms == accumulated.norms);
      options.gradient_accumulation_steps = 1;
      const Run ring = RunEngine(2, options, 4);
      CHECK(ring.params == plain.params);
      CHECK(ring.norms == plain.norms);
    }
  }
  InMemoryKvStore store;
  auto comm = CreateGlooCommunicator(store, 0, 1, {});
  REQUIRE(comm.ok());
  ZeroOptions o;
  o.optimizer_space = MemorySpace::kNvme;
  o.nvme_path = "/nonexistent/zerorun-nvme";
  const absl::Status missing = ZeroEngine::Create(kUnits, o, comm->get()).status();
  CHECK(missing.code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.message()), Catch::Contains("/nonexistent/zerorun-nvme"));
  o.optimizer_space = MemorySpace::kDevice;
  o.param_space = MemorySpace::kNvme;
  o.param_nvme_path = "/nonexistent/zerorun-params";
  o.stage = 3;
  const absl::Status params = ZeroEngine::Create(kUnits, o, comm->get()).status();
  CHECK(params.code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(params.message()),
             Catch::Contains("offload_param.nvme_path /nonexistent/zerorun-params"));
}

TEST_CASE(
    "Stage-3 parameters on NVMe (ZeRO-Infinity), with and without the optimizer there, are the "
    "in-memory training bit for bit",
    "[zero][offload][nvme]") {
  for (DType dtype : {DType::kFp32, DType::kBf16}) {
    for (bool overlap : {false, true}) {
      for (MemorySpace optimizer : {MemorySpace::kDevice, MemorySpace::kNvme}) {
        INFO(DTypeName(dtype) << " overlap " << overlap << " optimizer "
                              << MemorySpaceName(optimizer));
        ZeroOptions options = Stage3(overlap);
        options.dtype = dtype;
        options.gradient_clipping = 1.0f;
        const Run plain = RunEngine(3, options, 4);
        testing::TempDir nvme;
        options.param_space = MemorySpace::kNvme;
        options.param_nvme_path = nvme.path();
        options.optimizer_space = optimizer;
        options.nvme_path = nvme.path();  // One directory per rank holds both files.
        options.sub_group_size = 5;
        options.aio.block_size = 4096;
        options.param_buffer_count = 1;  // Prefetch one unit's shard at a time.
        const Run swapped = RunEngine(3, options, 4);
        CHECK(swapped.params == plain.params);
        CHECK(swapped.norms == plain.norms);
        CHECK(swapped.stats.gathers == plain.stats.gathers);
        // The shards of the two units above the persistence threshold are on NVMe (embed: 144
        // elements with tensors aligned to 16, padded to 3 x 16, so 48 a rank; block: 96, so 32),
        // the small head is not.
        const size_t element = dtype == DType::kFp32 ? 4 : 2;
        const size_t params_nvme = (48 + 32) * element;
        // m, v, (16-bit) the masters, and the accumulator.
        const size_t optimizer_nvme =
            optimizer == MemorySpace::kNvme
                ? swapped.memory.optimizer * (dtype == DType::kFp32 ? 12 : 14) / 8
                : 0;
        CHECK(swapped.memory.nvme == params_nvme + optimizer_nvme);
        CHECK(swapped.memory.device + swapped.memory.nvme == swapped.memory.total());
        CHECK(swapped.memory.allocated == swapped.memory.device);  // Nothing on NVMe in memory.
        CHECK(swapped.working_is_rounded_master);
        CHECK(nvme.Listing().empty());
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
      status[r].Update(e.Init([](size_t u, size_t t, size_t b, size_t end, float* out) {
        for (size_t i = b; i < end; ++i) out[i - b] = Init(u, t, i);
      }));
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
      // Said once, to the caller (the library does not print).
      CHECK(tied.notices.empty());
      REQUIRE(reordered.notices.size() == 1);
      CHECK_THAT(reordered.notices[0], Catch::Contains("differs from the first step's order") &&
                                           Catch::Contains("prefetching is off"));
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
        status[r].Update(e.Init([&](size_t u, size_t t, size_t begin, size_t end, float* out) {
          filled[r] += end - begin;
          for (size_t i = begin; i < end; ++i) out[i - begin] = CounterNormal(7, u * 16 + t, i);
        }));
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

}  // namespace
}  // namespace zerorun

namespace zerorun {
namespace {

TEST_CASE("SetTensorAdam writes the owned part of m and v, in memory and on NVMe", "[zero][nvme]") {
  testing::TempDir dir;
  InMemoryKvStore store;
  auto comm = CreateGlooCommunicator(store, 0, 1, {});
  REQUIRE(comm.ok());
  for (MemorySpace space : {MemorySpace::kDevice, MemorySpace::kNvme}) {
    INFO("space " << static_cast<int>(space));
    ZeroOptions o;
    o.stage = 1;
    o.dtype = DType::kBf16;
    o.sub_group_size = 8;  // Chunks cut through the tensors.
    o.optimizer_space = space;
    o.nvme_path = dir.path();
    o.swap_tag = absl::StrCat("adam-", static_cast<int>(space));
    auto engine = ZeroEngine::Create(kUnits, o, comm->get());
    REQUIRE(engine.ok());
    ZeroEngine& e = **engine;
    // Tensor 1 of unit 1 ("block.b", 3 elements) gets m = 10 + i, v = 20 + i; the rest stays 0.
    const float m[3] = {10, 11, 12}, v[3] = {20, 21, 22};
    REQUIRE(e.SetTensorAdam(1, 1, m, v).ok());
    const UnitLayout& ul = e.layout().units()[1];
    std::vector<float> got_m, got_v;
    for (size_t k = 0; k < e.state_store().chunks(); ++k) {
      if (e.state_store().layout().chunks[k].unit != 1) continue;
      std::vector<float> cm(e.state_store().layout().chunks[k].count), cv(cm.size());
      REQUIRE(e.state_store().Read(k, StateArray::kM, cm.data()).ok());
      REQUIRE(e.state_store().Read(k, StateArray::kV, cv.data()).ok());
      got_m.insert(got_m.end(), cm.begin(), cm.end());
      got_v.insert(got_v.end(), cv.begin(), cv.end());
    }
    REQUIRE(got_m.size() == ul.padded);
    for (size_t i = 0; i < got_m.size(); ++i) {
      const size_t at = ul.tensors[1].offset;
      const bool inside = i >= at && i < at + 3;
      CHECK(got_m[i] == (inside ? m[i - at] : 0.0f));
      CHECK(got_v[i] == (inside ? v[i - at] : 0.0f));
    }
  }
}

}  // namespace
}  // namespace zerorun
