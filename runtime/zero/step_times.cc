// PhaseClock: wall time of the owner thread, charged to the innermost open phase.
#include "zerorun/step_times.h"

namespace zerorun {

PhaseClock::PhaseClock() : owner_(std::this_thread::get_id()), since_(Clock::now()) {}

void PhaseClock::Switch(Phase next) {
  const Clock::time_point now = Clock::now();
  totals_[static_cast<size_t>(current_)] += std::chrono::duration<double>(now - since_).count();
  since_ = now;
  current_ = next;
}

PhaseClock::Scope::Scope(PhaseClock* clock, Phase phase)
    : clock_(clock != nullptr && std::this_thread::get_id() == clock->owner_ ? clock : nullptr),
      saved_(clock_ != nullptr ? clock_->current_ : phase) {
  if (clock_ != nullptr) clock_->Switch(phase);
}

PhaseClock::Scope::~Scope() {
  if (clock_ != nullptr) clock_->Switch(saved_);
}

StepTimes PhaseClock::Lap() {
  Switch(current_);  // Charges the open phase up to now.
  StepTimes t;
  t.compute = totals_[static_cast<size_t>(Phase::kCompute)];
  t.comm_wait = totals_[static_cast<size_t>(Phase::kCommWait)];
  t.optimizer = totals_[static_cast<size_t>(Phase::kOptimizer)];
  t.io = totals_[static_cast<size_t>(Phase::kIo)];
  // The sum, not since_ - lap_start_: the phases add up to `seconds` exactly.
  t.seconds = t.compute + t.comm_wait + t.optimizer + t.io;
  totals_ = {};
  return t;
}

}  // namespace zerorun
