// CollectiveWatchdog: the no-hang guarantee of a device communicator (c10d's ProcessGroupNCCL
// watchdog). Collectives on a GPU run on a stream and finish later; a peer that died or never
// arrives leaves them running forever. The watchdog is one thread that polls every collective in
// flight: it completes a collective's Work when the backend's probe says it finished, and when one
// runs past the timeout or the backend reports an asynchronous error, it aborts the backend (for
// NCCL: ncclCommAbort, which makes the stuck kernels return) and completes every Work in flight
// with the error, naming this rank, the operation and its sequence number. Backend-independent:
// tested on the CPU with CPU streams; the NCCL communicator is its production user.
#ifndef ZERORUN_RUNTIME_COMM_WATCHDOG_H_
#define ZERORUN_RUNTIME_COMM_WATCHDOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "zerorun/comm.h"

namespace zerorun {

struct WatchdogBackend {
  // The backend's asynchronous error (NCCL: ncclCommGetAsyncError), OK while healthy. Called on
  // the watchdog thread, and only while a collective is in flight.
  std::function<absl::Status()> async_error;
  // Stops the backend; must make every probe below finish (complete or fail) soon. Called once,
  // on the watchdog thread.
  std::function<void()> abort;
};

class CollectiveWatchdog {
 public:
  // Done? true when the collective finished, an error when it failed. Called on the watchdog
  // thread; must not block.
  using Probe = std::function<absl::StatusOr<bool>()>;

  // Starts the thread. `rank` and `world_size` name this rank in errors; `timeout` bounds each
  // collective from its Watch; `poll` is the polling period while collectives are in flight
  // (with none the thread sleeps).
  CollectiveWatchdog(int rank, int world_size, absl::Duration timeout, WatchdogBackend backend,
                     absl::Duration poll = absl::Milliseconds(1));
  // Stops the thread. Collectives still in flight are completed with Cancelled: the owner
  // destroys the watchdog only after waiting for them (or after an abort).
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Registers a collective that was just issued: its Work completes when `done` says so, or with
  // DeadlineExceeded (past the timeout) or Aborted (the backend's error, or an earlier collective's
  // failure), both naming rank, `op` and its number, and saying that the communicator was
  // aborted. After an abort, returns a Work already failed with that error. Any thread.
  Work Watch(const char* op, Probe done);

  // The error that aborted the backend; OK while none did. Any thread.
  absl::Status aborted() const;
  int64_t issued() const;  // Collectives watched so far.

 private:
  struct Entry {
    int64_t seq;
    const char* op;
    absl::Time start;
    Probe done;
    Event event;
  };

  void Loop();
  // Aborts the backend once, then fails every collective in flight: the first (the one that
  // failed) with `error`, the others saying they did not complete.
  void Abort(absl::Status error) ABSL_LOCKS_EXCLUDED(mu_);
  std::string Name(const Entry& e) const;

  const int rank_, world_size_;
  const absl::Duration timeout_, poll_;
  WatchdogBackend backend_;
  mutable zerorun::Mutex mu_;
  std::deque<Entry> in_flight_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status aborted_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_COMM_WATCHDOG_H_
