// FlightRecorder: the collectives in flight in this process (backends record as they run).
#include "zerorun/flight_recorder.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace zerorun {
namespace {

thread_local std::string current_unit;

}  // namespace

struct FlightRecorder::State {
  struct Entry {
    std::string op, unit;
    size_t bytes = 0;
    int rank = 0, world_size = 0;
    absl::Time start;
  };
  mutable zerorun::Mutex mu;
  uint64_t next_seq ABSL_GUARDED_BY(mu) = 1;
  std::map<uint64_t, Entry> in_flight ABSL_GUARDED_BY(mu);
};

FlightRecorder::FlightRecorder() : state_(std::make_unique<State>()) {}

FlightRecorder& FlightRecorder::Global() {
  static FlightRecorder* recorder = new FlightRecorder();
  return *recorder;
}

uint64_t FlightRecorder::Begin(const char* op, size_t bytes, int rank, int world_size) {
  zerorun::MutexLock lock(&state_->mu);
  const uint64_t seq = state_->next_seq++;
  state_->in_flight[seq] = State::Entry{op, current_unit, bytes, rank, world_size, absl::Now()};
  return seq;
}

void FlightRecorder::End(uint64_t seq) {
  zerorun::MutexLock lock(&state_->mu);
  state_->in_flight.erase(seq);
}

std::string FlightRecorder::InFlight() const {
  zerorun::MutexLock lock(&state_->mu);
  if (state_->in_flight.empty()) return "";
  const auto& [seq, e] = *state_->in_flight.begin();
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
