// The step-time breakdown: PhaseClock's accounting, and the engine's phases on real Gloo ranks
// (a slow rank shows as its peer's communication wait, NVMe swaps and checkpoints as I/O).
#include "zerorun/step_times.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "engine_harness.h"
#include "support/temp_dir.h"

namespace zerorun {
namespace {

using engine_harness::kUnits;
using engine_harness::Stage3;

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void RequireAddsUp(const StepTimes& t) {
  CHECK(t.compute >= 0);
  CHECK(t.comm_wait >= 0);
  CHECK(t.optimizer >= 0);
  CHECK(t.io >= 0);
  CHECK(t.seconds == Approx(t.compute + t.comm_wait + t.optimizer + t.io).epsilon(1e-9));
}

TEST_CASE("PhaseClock charges the innermost open phase of its owner thread", "[step_times]") {
  PhaseClock clock;
  SleepMs(30);  // Compute.
  {
    const PhaseClock::Scope opt(&clock, Phase::kOptimizer);
    SleepMs(20);
    {
      const PhaseClock::Scope io(&clock, Phase::kIo);
      SleepMs(40);
    }
    clock.Charge(Phase::kCommWait, [] { SleepMs(50); });
    // Another thread's scope changes nothing here: its time is not the owner's.
    std::thread other([&] {
      const PhaseClock::Scope foreign(&clock, Phase::kIo);
      SleepMs(5);
    });
    other.join();
  }
  const StepTimes t = clock.Lap();
  RequireAddsUp(t);
  CHECK(t.compute >= 0.030);
  CHECK(t.compute < 0.030 + 0.025);  // The join's 5 ms went to the optimizer, not to compute.
  CHECK(t.optimizer >= 0.020 + 0.005);
  CHECK(t.io >= 0.040);
  CHECK(t.io < 0.040 + 0.020);
  CHECK(t.comm_wait >= 0.050);
  // The next lap starts from zero.
  SleepMs(10);
  const StepTimes next = clock.Lap();
  CHECK(next.compute >= 0.010);
  CHECK(next.io == 0);
  CHECK(next.comm_wait == 0);
}

// Two ranks over Gloo; before each Step() rank `slow` computes `slow_ms` longer. Returns each
// rank's step_times() of every step.
std::vector<std::vector<StepTimes>> RunTwoRanks(const ZeroOptions& options, int steps, int slow,
                                                int slow_ms, const std::string& ckpt_dir = "") {
  InMemoryKvStore store;
  std::vector<std::vector<StepTimes>> times(2);
  std::vector<absl::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, 2, {});
      if (!comm.ok()) {
        status[r] = comm.status();
        return;
      }
      ZeroOptions mine = options;
      mine.swap_tag = absl::StrCat("times-rank", r);
      auto created = ZeroEngine::Create(kUnits, mine, comm->get());
      if (!created.ok()) {
        status[r] = created.status();
        return;
      }
      ZeroEngine& e = **created;
      status[r] = e.Init([](size_t u, size_t t, size_t begin, size_t end, float* out) {
        for (size_t i = begin; i < end; ++i) out[i - begin] = engine_harness::Init(u, t, i);
      });
      for (int step = 1; step <= steps && status[r].ok(); ++step) {
        for (size_t u = 0; u < kUnits.size() && status[r].ok(); ++u) {
          status[r] = e.Acquire(u, Pass::kForward).status();
        }
        for (size_t u = kUnits.size(); u-- > 0 && status[r].ok();) {
          absl::StatusOr<UnitGuard> guard = e.Acquire(u, Pass::kBackward);
          absl::StatusOr<float*> g = guard.ok() ? e.Grads(u) : guard.status();
          if (!g.ok()) {
            status[r] = g.status();
            break;
          }
          (*g)[0] += 0.5f * static_cast<float>(r + step);
          status[r] = e.GradsReady(u);
        }
        if (r == slow) SleepMs(slow_ms);
        if (status[r].ok()) status[r] = e.Step(step, 1e-3f).status();
        times[r].push_back(e.step_times());
        if (status[r].ok() && !ckpt_dir.empty()) {
          status[r] = SaveCheckpoint(e, **comm, ckpt_dir, DefaultTag(step), "{}", "{}");
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << ": " << status[r].ToString());
    REQUIRE(status[r].ok());
  }
  return times;
}

TEST_CASE("A slow rank shows as its peer's communication wait, at every stage",
          "[step_times][multirank]") {
  for (int stage : {0, 1, 2, 3}) {
    for (bool overlap : {false, true}) {
      INFO("stage " << stage << ", overlap_comm " << overlap);
      ZeroOptions options = stage == 3 ? Stage3(overlap) : ZeroOptions{};
      options.stage = stage;
      options.overlap_comm = overlap;
      const int slow_ms = 150;
      const auto times = RunTwoRanks(options, 3, /*slow=*/1, slow_ms);
      for (int step = 1; step < 3; ++step) {  // After the first step (set-up skew).
        const StepTimes& fast = times[0][step];
        const StepTimes& slow = times[1][step];
        RequireAddsUp(fast);
        RequireAddsUp(slow);
        CHECK(fast.comm_wait >= 0.8 * slow_ms / 1000);
        CHECK(slow.compute >= slow_ms / 1000.0);
        CHECK(slow.comm_wait < 0.5 * slow_ms / 1000);
        CHECK(fast.io == 0);
        // Both ranks' steps last about as long: they are in lock step.
        CHECK(fast.seconds == Approx(slow.seconds).margin(0.05));
      }
    }
  }
}

TEST_CASE("NVMe swaps and checkpoints are charged as I/O", "[step_times][nvme]") {
  testing::TempDir dir;
  ZeroOptions options;
  options.stage = 2;
  options.dtype = DType::kBf16;
  options.optimizer_space = MemorySpace::kNvme;
  options.nvme_path = dir.path();
  options.sub_group_size = 7;
  options.aio.block_size = 4096;
  const auto swapped = RunTwoRanks(options, 3, /*slow=*/-1, 0);
  for (int r = 0; r < 2; ++r) {
    for (const StepTimes& t : swapped[r]) {
      RequireAddsUp(t);
      CHECK(t.io > 0);
      CHECK(t.optimizer > 0);
    }
  }
  // A checkpoint after every step: the next step's I/O holds the save.
  testing::TempDir ckpt;
  ZeroOptions plain;
  const auto saved = RunTwoRanks(plain, 3, /*slow=*/-1, 0, ckpt.path());
  const auto unsaved = RunTwoRanks(plain, 3, /*slow=*/-1, 0);
  for (int r = 0; r < 2; ++r) {
    CHECK(unsaved[r][1].io == 0);
    CHECK(saved[r][1].io > 0);
    CHECK(saved[r][2].io > 0);
  }
}

}  // namespace
}  // namespace zerorun
