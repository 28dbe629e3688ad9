// CommWorker: one thread, a FIFO of collectives, tickets in submission order.
#include "zero/comm_worker.h"

#include <utility>

namespace zerorun {

CommWorker::CommWorker(bool async, PhaseClock* clock) : async_(async), clock_(clock) {
  if (async_) thread_ = std::thread([this] { Loop(); });
}

CommWorker::~CommWorker() {
  if (!async_) return;
  {
    zerorun::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

uint64_t CommWorker::Submit(Task task) {
  const uint64_t ticket = ++submitted_;
  if (!async_) {
    const PhaseClock::Scope waiting(clock_, Phase::kCommWait);
    zerorun::MutexLock lock(&mu_);
    if (error_.ok()) error_ = task();
    completed_ = ticket;
    return ticket;
  }
  zerorun::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
  return ticket;
}

absl::Status CommWorker::Wait(uint64_t ticket) {
  const PhaseClock::Scope waiting(clock_, Phase::kCommWait);
  zerorun::MutexLock lock(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return completed_ >= ticket; };
  mu_.Await(zerorun::Condition(&done));
  return error_;
}

bool CommWorker::Done(uint64_t ticket) {
  zerorun::MutexLock lock(&mu_);
  return completed_ >= ticket;
}

void CommWorker::Loop() {
  for (;;) {
    Task task;
    {
      zerorun::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(zerorun::Condition(&ready));
      if (queue_.empty()) return;  // Stopping with nothing left.
      task = std::move(queue_.front());
      queue_.pop_front();
      if (!error_.ok()) {
        ++completed_;
        continue;
      }
    }
    absl::Status status = task();  // Unlocked: the caller computes meanwhile.
    zerorun::MutexLock lock(&mu_);
    if (error_.ok()) error_ = std::move(status);
    ++completed_;
  }
}

}  // namespace zerorun
