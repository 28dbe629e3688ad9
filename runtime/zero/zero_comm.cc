// The engine's communication: the CommQueue (collectives and the NVMe reads feeding them, in
// issue order; asynchronous with overlap_comm), the in-place collectives the engine issues on
// unit buffers, and the first step's acquire-order check across ranks.
#include "absl/strings/str_cat.h"
#include "zero/comm_queue.h"
#include "zero/engine_internal.h"
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

absl::Status ZeroEngine::CheckOrderAcrossRanks() {
  // FNV-1a over the (unit, pass) sequence; its 8 bytes b_i and b_i^2 are summed over ranks in
  // fp32 (exact: < 2^24), and N * sum(b^2) == sum(b)^2 for every byte iff all ranks agree.
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { hash = (hash ^ v) * 1099511628211ull; };
  mix(trace_.size());
  for (const auto& [unit, pass] : trace_) mix(unit * 2 + (pass == Pass::kBackward ? 1 : 0));
  float sums[16];
  for (int i = 0; i < 8; ++i) {
    const float b = static_cast<float>((hash >> (8 * i)) & 0xff);
    sums[i] = b;
    sums[8 + i] = b * b;
  }
  if (absl::Status s = comm_->AllReduce(HostView(sums, 16), ReduceOp::kSum).Wait(); !s.ok()) {
    return s;
  }
  const double n = comm_->world_size();
  for (int i = 0; i < 8; ++i) {
    if (n * sums[8 + i] != static_cast<double>(sums[i]) * sums[i]) {
      stats_.order_consistent = false;
    }
  }
  if (!stats_.order_consistent) {
    prefetch_enabled_ = false;
    notices_.push_back(absl::StrCat(
        "rank ", comm_->rank(),
        ": the ranks acquired their units in different orders in the first step; prefetching is "
        "off (every rank must acquire in the same order)"));
  }
  return absl::OkStatus();
}

}  // namespace zerorun
