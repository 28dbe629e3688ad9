// The engine's communication: the CommQueue (collectives and the NVMe reads feeding them, in
// issue order; asynchronous with overlap_comm) and the in-place collectives on unit buffers.
#include "zero/comm_queue.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

CommQueue::CommQueue(bool async, PhaseClock* clock)
    : async_(async), clock_(clock), stream_(CreateCpuStream(async)) {}

CommQueue::~CommQueue() { (void)stream_->Synchronize(); }

CommMark CommQueue::Submit(Stream::Task task) {
  const PhaseClock::Scope waiting(async_ ? nullptr : clock_, Phase::kCommWait);
  stream_->Enqueue(std::move(task));
  return CommMark{Work(stream_->Record(), "engine communication"), ++seq_};
}

absl::Status CommQueue::Await(const CommMark& mark) {
  const PhaseClock::Scope waiting(clock_, Phase::kCommWait);
  return mark.seq == 0 ? stream_->status() : mark.work.Wait();
}

absl::Status CommQueue::Sync() {
  const PhaseClock::Scope waiting(clock_, Phase::kCommWait);
  return stream_->Synchronize();
}

absl::Status GatherInPlace(Communicator& comm, BufferView full) {
  const size_t shard = full.count / static_cast<size_t>(comm.world_size());
  return comm.AllGather(full.Slice(static_cast<size_t>(comm.rank()) * shard, shard), full).Wait();
}

absl::Status ReduceScatterInPlace(Communicator& comm, BufferView full, ReduceOp op) {
  const size_t shard = full.count / static_cast<size_t>(comm.world_size());
  const BufferView mine = full.Slice(static_cast<size_t>(comm.rank()) * shard, shard);
  return comm.ReduceScatter(full, mine, op).Wait();
}

absl::Status ZeroEngine::Sync() { return comm_queue_->Sync(); }

}  // namespace zerorun
