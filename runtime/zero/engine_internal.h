// Internal state of ZeroEngine shared by zero_engine.cc (set-up, step, memory) and
// zero_units.cc (acquire, release, gather, prefetch, gradients).
#ifndef ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_
#define ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "zero/comm_worker.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

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
  uint64_t view_ticket = 0;      // The gather that fills `view`.
  uint64_t ready_ticket = 0;     // Resident weights: the post-step gather to wait for.
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
    int owner = -1;           // Unit, or -1 when free.
    uint64_t busy_until = 0;  // Gradient slots: the reduce-scatter still reading it.
  };
  // A new buffer (owner -1); its index.
  int Add() {
    buffers_.push_back(Buffer{std::vector<float>(floats_), std::vector<uint16_t>(halves_)});
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

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_
