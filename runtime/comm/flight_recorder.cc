// FlightRecorder and the recording Communicator decorator.
#include "zerorun/flight_recorder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace zerorun {
namespace {

thread_local std::string current_unit;

class RecordingCommunicator : public Communicator {
 public:
  explicit RecordingCommunicator(std::unique_ptr<Communicator> comm) : comm_(std::move(comm)) {}
  int rank() const override { return comm_->rank(); }
  int world_size() const override { return comm_->world_size(); }

  absl::Status AllReduce(float* data, size_t n, ReduceOp op) override {
    return Recorded("all_reduce", n * 4, [&] { return comm_->AllReduce(data, n, op); });
  }
  absl::Status ReduceScatter(float* data, size_t shard, ReduceOp op) override {
    return Recorded("reduce_scatter", Bytes(shard, 4),
                    [&] { return comm_->ReduceScatter(data, shard, op); });
  }
  absl::Status AllGather(float* data, size_t shard) override {
    return Recorded("all_gather", Bytes(shard, 4), [&] { return comm_->AllGather(data, shard); });
  }
  absl::Status ReduceScatter16(uint16_t* data, size_t shard, DType dtype, ReduceOp op,
                               float* out) override {
    return Recorded("reduce_scatter16", Bytes(shard, 2),
                    [&] { return comm_->ReduceScatter16(data, shard, dtype, op, out); });
  }
  absl::Status AllGather16(uint16_t* data, size_t shard) override {
    return Recorded("all_gather16", Bytes(shard, 2),
                    [&] { return comm_->AllGather16(data, shard); });
  }
  absl::Status Broadcast(float* data, size_t n, int root) override {
    return Recorded("broadcast", n * 4, [&] { return comm_->Broadcast(data, n, root); });
  }
  absl::Status Barrier() override {
    return Recorded("barrier", 0, [&] { return comm_->Barrier(); });
  }

 private:
  size_t Bytes(size_t shard, size_t element) const {
    return shard * element * static_cast<size_t>(comm_->world_size());
  }
  template <typename F>
  absl::Status Recorded(const char* op, size_t bytes, F&& run) {
    FlightRecorder& recorder = FlightRecorder::Global();
    const uint64_t seq = recorder.Begin(op, bytes, comm_->rank(), comm_->world_size());
    absl::Status status = run();
    recorder.End(seq);
    return status;
  }

  std::unique_ptr<Communicator> comm_;
};

}  // namespace

FlightRecorder& FlightRecorder::Global() {
  static FlightRecorder* recorder = new FlightRecorder();
  return *recorder;
}

uint64_t FlightRecorder::Begin(const char* op, size_t bytes, int rank, int world_size) {
  zerorun::MutexLock lock(&mu_);
  const uint64_t seq = next_seq_++;
  in_flight_[seq] = Entry{op, current_unit, bytes, rank, world_size, absl::Now()};
  return seq;
}

void FlightRecorder::End(uint64_t seq) {
  zerorun::MutexLock lock(&mu_);
  in_flight_.erase(seq);
}

std::string FlightRecorder::InFlight() const {
  zerorun::MutexLock lock(&mu_);
  if (in_flight_.empty()) return "";
  const auto& [seq, e] = *in_flight_.begin();
  std::vector<int> peers;
  for (int r = 0; r < e.world_size; ++r) {
    if (r != e.rank) peers.push_back(r);
  }
  return absl::StrFormat("%s #%d%s (%d bytes) for %.1f s, waiting on rank(s) %s", e.op, seq,
                         e.unit.empty() ? "" : absl::StrCat(" unit ", e.unit), e.bytes,
                         absl::ToDoubleSeconds(absl::Now() - e.start), absl::StrJoin(peers, ","));
}

FlightUnit::FlightUnit(const std::string& unit) : previous_(current_unit) { current_unit = unit; }
FlightUnit::~FlightUnit() { current_unit = previous_; }

std::unique_ptr<Communicator> WithFlightRecorder(std::unique_ptr<Communicator> comm) {
  return std::make_unique<RecordingCommunicator>(std::move(comm));
}

}  // namespace zerorun
