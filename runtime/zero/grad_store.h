// GradStore: one rank's gradients from the backward pass to the optimizer step, except the shard
// accumulator of stages 2-3, which lives in the StateStore beside the optimizer state it feeds
// (chunk by chunk, on NVMe with it):
// - stages 0-1: every unit's full gradients (padded), accumulated over micro-steps, in fp32 or
//   (16-bit weights) the working dtype, reduced at the step;
// - slots: unit-sized buffers the backward pass writes a unit's gradients into where they do not
//   go straight into the full ones (16-bit weights, stages 2-3), at most `max_slots`, each reused
//   once the reduction reading it is done.
// Engine thread only. A slot handed back with Give() is read by its reduction on the CommQueue
// until the mark passed to Busy() completes; Take() waits for it before reusing the slot.
#ifndef ZERORUN_RUNTIME_ZERO_GRAD_STORE_H_
#define ZERORUN_RUNTIME_ZERO_GRAD_STORE_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "zero/comm_queue.h"
#include "zero/unit_slots.h"
#include "zerorun/device.h"
#include "zerorun/partition.h"

namespace zerorun {

class GradStore {
 public:
  // Allocates the full gradients (stages 0-1) now and the slots on first need, from `allocator`
  // (which must outlive the store).
  static absl::StatusOr<std::unique_ptr<GradStore>> Create(const Layout& layout, int stage,
                                                           DType dtype, size_t max_slots,
                                                           Allocator* allocator);
  GradStore(const GradStore&) = delete;
  GradStore& operator=(const GradStore&) = delete;

  // Stages 0-1: `unit`'s full gradients (padded elements, fp32 or the working dtype); empty at
  // stages 2-3. Valid as long as the store.
  BufferView full(size_t unit) const { return full_[unit].view(); }
  void ZeroFull();

  // A zeroed slot for `unit` in fp32 or (`sixteen`) the working dtype, valid until Give(unit);
  // the same one again when `unit` holds one already (tied weights), FailedPrecondition when it
  // was taken in the other dtype. Waits on `queue` for the slot's last reduction;
  // ResourceExhausted when every slot is held by a unit not given back.
  absl::StatusOr<BufferView> Take(size_t unit, bool sixteen, CommQueue& queue);
  // `unit`'s slot handed back (FailedPrecondition naming the unit when it holds none): the slot's
  // index, its fp32 and 16-bit areas and which one this micro-step wrote.
  struct Given {
    int slot;
    float* f32;
    uint16_t* f16;
    bool in16;
  };
  absl::StatusOr<Given> Give(size_t unit);
  // The task on the queue that reads the given slot until `until` completes.
  void Busy(int slot, CommMark until) { slots_[slot].busy_until = std::move(until); }
  // `unit` holds a slot not handed back yet.
  bool holds(size_t unit) const { return holder_[unit] >= 0; }

  size_t full_bytes() const;
  size_t slot_bytes() const { return slots_.bytes(); }

 private:
  GradStore(const Layout& layout, DType dtype, size_t max_slots, Allocator* allocator);

  const Layout& layout_;
  const DType dtype_;
  const size_t max_slots_;
  Allocator* allocator_;
  std::vector<Buffer> full_;
  UnitSlots slots_;
  std::vector<int> holder_;  // Per unit its slot, -1 when none.
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_GRAD_STORE_H_
