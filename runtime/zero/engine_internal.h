// Internal state of ZeroEngine shared by zero_engine.cc (set-up, step, memory), zero_units.cc
// (acquire, release, gather, prefetch, gradients), zero_values.cc (values, masters) and
// zero_comm.cc (the communication stream). Engine-thread state unless marked otherwise.
#ifndef ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_
#define ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "zerorun/comm.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

// A point on the engine's communication stream: the work before it, and its place in issue order
// (seq 0: nothing issued; its Work is complete).
struct ZeroEngine::CommMark {
  Work work;
  uint64_t seq = 0;
};

struct ZeroEngine::Unit {
  bool resident = true;          // Full working copy held (stages 0-2; persistent units of 3).
  bool on_nvme = false;          // Not resident, working shard in the ParamSwap (not work*).
  std::vector<float> work32;     // fp32 working weights: full (resident) or the shard.
  std::vector<uint16_t> work16;  // 16-bit working weights, same.
  std::vector<float> grad32;     // fp32 stages 0/1: full gradients.
  std::vector<uint16_t> grad16;  // 16-bit stages 0/1: full gradients.
  size_t state_base = 0;         // Where the unit's owned elements start in state order.
  int refs = 0;                  // Live guards.
  int view = -1;                 // Parameter slot with the fp32 view, -1 when none.
  CommMark view_ready;           // The gather that fills `view`.
  CommMark weights_ready;        // Resident weights: the post-step gather to wait for.
  bool prefetched = false;       // Gathered ahead and not yet acquired.
  bool keep = false;             // KeepForBackward.
  Pass last_pass = Pass::kForward;
  uint64_t last_use = 0;  // LRU clock of parameter slots.
  int grad_slot = -1;
  bool grads_on_disk = false;  // Optimizer swap: this step's accumulated gradients were written.
};

// Unit-sized buffers: parameter slots (fp32 views, plus a 16-bit gather area when needed) and
// gradient slots (fp32, plus a 16-bit area for the 16-bit reduce), allocated on first need.
class ZeroEngine::Slots {
 public:
  Slots(size_t floats, size_t halves) : floats_(floats), halves_(halves) {}
  struct Buffer {
    std::vector<float> f32;
    std::vector<uint16_t> f16;
    int owner = -1;       // Unit, or -1 when free.
    CommMark busy_until;  // Gradient slots: the reduce-scatter still reading it.
    bool in16 = false;    // Gradient slots: this micro-step's values are in f16 (WorkingGrads).
  };
  // A new buffer (owner -1); its index.
  int Add() {
    buffers_.push_back(
        Buffer{std::vector<float>(floats_), std::vector<uint16_t>(halves_), -1, {}, false});
    return static_cast<int>(buffers_.size()) - 1;
  }
  Buffer& operator[](int i) { return buffers_[static_cast<size_t>(i)]; }
  int size() const { return static_cast<int>(buffers_.size()); }
  size_t floats() const { return floats_; }
  size_t bytes() const {
    return buffers_.size() * (floats_ * sizeof(float) + halves_ * sizeof(uint16_t));
  }

 private:
  size_t floats_, halves_;
  std::deque<Buffer> buffers_;  // A deque: Add() never moves a buffer the worker is using.
};

// In-place collectives on a unit's padded buffer of world_size() shards (the rank's own shard at
// rank() * shard), on the calling thread (the engine's stream runs them).
absl::Status GatherInPlace(Communicator& comm, BufferView full);
absl::Status ReduceScatterInPlace(Communicator& comm, BufferView full, ReduceOp op);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_
