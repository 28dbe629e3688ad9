// A single communication thread for the ZeRO engine: collectives run one at a time in the order
// they were submitted (the same order on every rank), while the caller computes. Inline mode
// runs each task inside Submit() (overlap_comm off). The caller's time blocked in Wait() or in an
// inline task is charged to `clock` as communication wait.
#ifndef ZERORUN_RUNTIME_ZERO_COMM_WORKER_H_
#define ZERORUN_RUNTIME_ZERO_COMM_WORKER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "base/mutex.h"
#include "zerorun/step_times.h"

namespace zerorun {

class CommWorker {
 public:
  using Task = std::function<absl::Status()>;
  // `clock` (may be null) must outlive the worker.
  CommWorker(bool async, PhaseClock* clock);
  ~CommWorker();  // Drains the queue.

  // Queues `task`; returns its ticket (1, 2, ...). After a failure every later task is skipped
  // and every wait returns the first error.
  uint64_t Submit(Task task);
  // Blocks until task `ticket` (and all before it) finished; the first error so far, if any.
  absl::Status Wait(uint64_t ticket);
  absl::Status Drain() { return Wait(submitted_); }
  bool Done(uint64_t ticket);

 private:
  void Loop();
  const bool async_;
  PhaseClock* const clock_;
  zerorun::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t submitted_ = 0;  // Caller thread only.
  std::thread thread_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_COMM_WORKER_H_
