// UnitSlots: a pool of unit-sized buffers from an Allocator, an fp32 area and, where needed, a
// 16-bit one each: the parameter store's views (widened or gathered units) and the gradient
// store's slots. Slots are added on first need and kept; adding never moves a slot in use.
// Engine thread only; a slot's memory may be in use by a task on the CommQueue until its
// `busy_until` mark completes.
#ifndef ZERORUN_RUNTIME_ZERO_UNIT_SLOTS_H_
#define ZERORUN_RUNTIME_ZERO_UNIT_SLOTS_H_

#include <cstddef>
#include <cstdint>
#include <deque>

#include "absl/status/statusor.h"
#include "zero/comm_queue.h"
#include "zerorun/device.h"

namespace zerorun {

class UnitSlots {
 public:
  struct Slot {
    Buffer f32;           // `floats` fp32 elements.
    Buffer f16;           // `halves` 16-bit elements (empty when halves is 0).
    int owner = -1;       // Unit, or -1 when free.
    CommMark busy_until;  // The task still reading or writing the slot.
    bool in16 = false;    // Gradient slots: this micro-step's values are in f16.
    float* floats() const { return static_cast<float*>(f32.view().data); }
    uint16_t* halves() const { return static_cast<uint16_t*>(f16.view().data); }
  };
  // `allocator` must outlive the pool.
  UnitSlots(size_t floats, size_t halves, DType half_dtype, Allocator* allocator)
      : floats_(floats), halves_(halves), half_dtype_(half_dtype), allocator_(allocator) {}

  // A new zeroed slot (owner -1); its index. ResourceExhausted from the allocator.
  absl::StatusOr<int> Add() {
    Slot slot;
    absl::StatusOr<Buffer> f32 = Buffer::Allocate(*allocator_, floats_, DType::kFp32);
    if (!f32.ok()) return f32.status();
    slot.f32 = *std::move(f32);
    if (halves_ > 0) {
      absl::StatusOr<Buffer> f16 = Buffer::Allocate(*allocator_, halves_, half_dtype_);
      if (!f16.ok()) return f16.status();
      slot.f16 = *std::move(f16);
    }
    slots_.push_back(std::move(slot));
    return static_cast<int>(slots_.size()) - 1;
  }
  Slot& operator[](int i) { return slots_[static_cast<size_t>(i)]; }
  const Slot& operator[](int i) const { return slots_[static_cast<size_t>(i)]; }
  int size() const { return static_cast<int>(slots_.size()); }
  size_t elements() const { return floats_ > halves_ ? floats_ : halves_; }  // A unit's worth.
  size_t bytes() const {
    return slots_.size() * (floats_ * sizeof(float) + halves_ * sizeof(uint16_t));
  }

 private:
  size_t floats_, halves_;
  DType half_dtype_;
  Allocator* allocator_;
  std::deque<Slot> slots_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_UNIT_SLOTS_H_
