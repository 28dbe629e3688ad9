// FlightRecorder: the collectives in flight in this process (backends record as they run).
#include "zerorun/flight_recorder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace zerorun {
namespace {

thread_local std::string current_unit;

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

}  // namespace zerorun
