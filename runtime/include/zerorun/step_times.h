// Where a rank's step time goes: computing, blocked on communication, in the optimizer, blocked
// on I/O. A PhaseClock charges the wall time of the thread that owns it to one phase at a time.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_STEP_TIMES_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_STEP_TIMES_H_

#include <array>
#include <chrono>
#include <thread>

namespace zerorun {

// One step's wall time (`seconds`, from the previous Step() return to this one's) split into
// phases that add up to it.
struct StepTimes {
  double seconds = 0;
  double compute = 0;    // Everything else: forward, backward, the caller's own work.
  double comm_wait = 0;  // Blocked in a collective or waiting for the communication thread.
  double optimizer = 0;  // Inside Step(): unscale, norm, clipping, AdamW, write-back.
  double io = 0;         // Blocked on NVMe swaps, checkpoints, or the caller's marked I/O.
};

enum class Phase { kCompute = 0, kCommWait, kOptimizer, kIo };

// Charges time to the current phase of its owner thread (the one that constructed it). Scopes
// nest; the innermost wins. On any other thread a Scope does nothing, so code shared with a
// communication thread may open scopes freely. Not thread-safe beyond that: owner thread only.
class PhaseClock {
 public:
  PhaseClock();
  PhaseClock(const PhaseClock&) = delete;
  PhaseClock& operator=(const PhaseClock&) = delete;

  class Scope {
   public:
    Scope(PhaseClock* clock, Phase phase);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    PhaseClock* clock_;  // nullptr off the owner thread.
    Phase saved_;
  };

  // Runs fn() charged to `phase`; returns what it returns.
  template <typename Fn>
  auto Charge(Phase phase, Fn&& fn) {
    const Scope scope(this, phase);
    return fn();
  }

  // The time charged since the previous Lap (or construction), the open phase included; starts
  // the next lap. Owner thread only.
  StepTimes Lap();

 private:
  using Clock = std::chrono::steady_clock;
  void Switch(Phase next);
  const std::thread::id owner_;
  Phase current_ = Phase::kCompute;
  Clock::time_point since_;
  std::array<double, 4> totals_{};
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_STEP_TIMES_H_
