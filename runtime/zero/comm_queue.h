// CommQueue: the ZeRO engine's communication stream. Collectives (and the NVMe reads feeding
// them) run on it in issue order: on its own thread with overlap_comm, or inline in Submit
// without it. Waits are charged to the engine's PhaseClock as communication wait. The stores
// (parameters, gradients) submit their gathers and reductions here and keep the marks.
#ifndef ZERORUN_RUNTIME_ZERO_COMM_QUEUE_H_
#define ZERORUN_RUNTIME_ZERO_COMM_QUEUE_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "zerorun/comm.h"
#include "zerorun/device.h"
#include "zerorun/step_times.h"

namespace zerorun {

// A point on the queue: the work before it, and its place in issue order (seq 0: nothing issued;
// its Work is complete). Copyable.
struct CommMark {
  Work work;
  uint64_t seq = 0;
};

// Engine thread only (Submit, Await, Sync); tasks run on the queue's thread, in order, and may
// read the memory they were given until their mark completes. `clock` must outlive the queue.
class CommQueue {
 public:
  CommQueue(bool async, PhaseClock* clock);
  ~CommQueue();  // Waits for every task.
  CommQueue(const CommQueue&) = delete;
  CommQueue& operator=(const CommQueue&) = delete;

  bool async() const { return async_; }
  // `task` enqueued (run at once, charged as communication wait, when not async).
  CommMark Submit(Stream::Task task);
  // Waits for a mark (a mark of nothing answers the first error so far).
  absl::Status Await(const CommMark& mark);
  // Waits for everything submitted; the first error of any task.
  absl::Status Sync();
  absl::Status status() const { return stream_->status(); }

 private:
  const bool async_;
  PhaseClock* clock_;
  std::unique_ptr<Stream> stream_;
  uint64_t seq_ = 0;
};

// In-place collectives on a unit's padded buffer of world_size() shards (the rank's own shard at
// rank() * shard), on the calling thread (the queue runs them).
absl::Status GatherInPlace(Communicator& comm, BufferView full);
absl::Status ReduceScatterInPlace(Communicator& comm, BufferView full, ReduceOp op);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_COMM_QUEUE_H_
