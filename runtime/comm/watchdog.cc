// CollectiveWatchdog: one thread polls the collectives in flight, completes them, and turns a
// timeout or a backend error into an abort and an error on every one of them.
#include "comm/watchdog.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace zerorun {

CollectiveWatchdog::CollectiveWatchdog(int rank, int world_size, absl::Duration timeout,
                                       WatchdogBackend backend, absl::Duration poll)
    : rank_(rank),
      world_size_(world_size),
      timeout_(timeout),
      poll_(poll),
      backend_(std::move(backend)) {
  thread_ = std::thread([this] { Loop(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    zerorun::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  zerorun::MutexLock lock(&mu_);
  for (Entry& e : in_flight_) {
    e.event.Complete(absl::CancelledError(
        absl::StrCat(Name(e), ": the communicator was destroyed while it ran")));
  }
  in_flight_.clear();
}

std::string CollectiveWatchdog::Name(const Entry& e) const {
  return absl::StrCat("rank ", rank_, " of ", world_size_, ": ", e.op, " #", e.seq);
}

Work CollectiveWatchdog::Watch(const char* op, Probe done) {
  zerorun::MutexLock lock(&mu_);
  if (!aborted_.ok()) return Work::Done(aborted_, op);
  Entry& e = in_flight_.emplace_back(
      Entry{++next_seq_, op, absl::Now(), std::move(done), Event::Pending()});
  return Work(e.event, op);
}

absl::Status CollectiveWatchdog::aborted() const {
  zerorun::MutexLock lock(&mu_);
  return aborted_;
}

int64_t CollectiveWatchdog::issued() const {
  zerorun::MutexLock lock(&mu_);
  return next_seq_;
}

void CollectiveWatchdog::Abort(absl::Status error) {
  {
    zerorun::MutexLock lock(&mu_);
    if (!aborted_.ok()) return;
    aborted_ = error;
  }
  // Unlocked: the abort may take a while, and Watch answers with aborted_ meanwhile.
  if (backend_.abort) backend_.abort();
  zerorun::MutexLock lock(&mu_);
  // The collective that failed (the first in flight: they are probed in order) carries the error
  // itself, the later ones say why they did not complete.
  for (Entry& e : in_flight_) {
    const bool cause = &e == &in_flight_.front();
    e.event.Complete(cause ? error
                           : absl::Status(error.code(), absl::StrCat(Name(e), " did not complete: ",
                                                                     error.message())));
  }
  in_flight_.clear();
}

void CollectiveWatchdog::Loop() {
  for (;;) {
    std::deque<Entry> batch;
    {
      zerorun::MutexLock lock(&mu_);
      // Idle until a collective is watched (no polling then), then every poll_.
      auto busy = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !in_flight_.empty(); };
      mu_.Await(zerorun::Condition(&busy));
      auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(zerorun::Condition(&wake), poll_);
      if (stop_ || !aborted_.ok()) return;
      batch.swap(in_flight_);
    }
    if (batch.empty()) continue;
    absl::Status failure;
    // In issue order: a collective finishes after the ones before it on the same stream.
    while (!batch.empty() && failure.ok()) {
      Entry& e = batch.front();
      absl::StatusOr<bool> done = e.done();
      if (!done.ok()) {
        failure = absl::AbortedError(absl::StrCat(Name(e), " failed: ", done.status().message(),
                                                  "; the communicator was aborted"));
      } else if (*done) {
        e.event.Complete(absl::OkStatus());
        batch.pop_front();
        continue;
      } else if (absl::Now() - e.start > timeout_) {
        failure = absl::DeadlineExceededError(absl::StrCat(
            Name(e), " did not complete within ", absl::FormatDuration(timeout_),
            " (a peer died, hangs, or never issued it); the communicator was aborted"));
      } else if (backend_.async_error) {
        if (absl::Status async = backend_.async_error(); !async.ok()) {
          failure = absl::AbortedError(
              absl::StrCat(Name(e), ": ", async.message(),
                           " (a peer died or the connection broke); the communicator was aborted"));
        }
      }
      break;  // Not done (or failed): the later ones wait for the next round.
    }
    {
      zerorun::MutexLock lock(&mu_);
      // Put the unfinished ones back ahead of those Watch added meanwhile.
      while (!batch.empty()) {
        in_flight_.push_front(std::move(batch.back()));
        batch.pop_back();
      }
    }
    if (!failure.ok()) {
      Abort(failure);
      return;
    }
  }
}

}  // namespace zerorun
