// The flight recorder: which collective each rank is inside right now (operation, unit, sequence
// number, bytes, peers, for how long). The heartbeat carries it to the coordinator, so a hang
// report names what every rank waits on (like NCCL's and PyTorch's flight recorders).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_FLIGHT_RECORDER_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_FLIGHT_RECORDER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace zerorun {

// Thread-safe; one per process (ranks are processes).
class FlightRecorder {
 public:
  static FlightRecorder& Global();

  // A collective begins on the calling thread (backends call Begin/End around each one as it
  // runs); returns its sequence number (1, 2, ... in issue order, the same on every rank for
  // the same collective).
  uint64_t Begin(const char* op, size_t bytes, int rank, int world_size);
  void End(uint64_t seq);
  // The oldest collective in flight, e.g. "all_reduce #41 unit h.3 (1048576 bytes) for 12.3 s,
  // waiting on ranks 0,2 (ring)", or "" when none.
  std::string InFlight() const;

 private:
  FlightRecorder();
  struct State;
  std::unique_ptr<State> state_;
};

// Names the ZeRO unit the calling thread's collectives are for while it lives.
class FlightUnit {
 public:
  explicit FlightUnit(const std::string& unit);
  ~FlightUnit();
  FlightUnit(const FlightUnit&) = delete;
  FlightUnit& operator=(const FlightUnit&) = delete;

 private:
  std::string previous_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_FLIGHT_RECORDER_H_
