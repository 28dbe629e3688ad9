// GradStore: full gradients (stages 0-1) and the gradient slots of the backward pass.
#include "zero/grad_store.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun {

absl::StatusOr<std::unique_ptr<GradStore>> GradStore::Create(const Layout& layout, int stage,
                                                             DType dtype, size_t max_slots,
                                                             Allocator* allocator) {
  std::unique_ptr<GradStore> store(new GradStore(layout, dtype, max_slots, allocator));
  if (stage >= 2) return store;
  for (size_t i = 0; i < layout.units().size(); ++i) {
    absl::StatusOr<Buffer> full =
        Buffer::Allocate(*store->allocator_, layout.units()[i].padded, dtype);
    if (!full.ok()) {
      return absl::Status(full.status().code(),
                          absl::StrCat("gradients of unit ", layout.units()[i].name, ": ",
                                       full.status().message()));
    }
    store->full_[i] = *std::move(full);
  }
  return store;
}

GradStore::GradStore(const Layout& layout, DType dtype, size_t max_slots, Allocator* allocator)
    : layout_(layout),
      dtype_(dtype),
      max_slots_(max_slots),
      allocator_(allocator),
      full_(layout.units().size()),
      slots_(layout.max_padded(), dtype == DType::kFp32 ? 0 : layout.max_padded(), dtype,
             allocator),
      holder_(layout.units().size(), -1) {}

void GradStore::ZeroFull() {
  for (Buffer& b : full_) {
    if (b.size() > 0) std::memset(b.view().data, 0, b.view().bytes());
  }
}

size_t GradStore::full_bytes() const {
  size_t bytes = 0;
  for (const Buffer& b : full_) bytes += b.view().bytes();
  return bytes;
}

absl::StatusOr<BufferView> GradStore::Take(size_t unit, bool sixteen, CommQueue& queue) {
  const size_t padded = layout_.units()[unit].padded;
  auto view = [&](int i) {
    return sixteen ? HostView(slots_[i].halves(), padded, dtype_)
                   : HostView(slots_[i].floats(), padded);
  };
  if (holder_[unit] >= 0) {  // Taken again in this micro-step (tied weights): the same buffer.
    if (slots_[holder_[unit]].in16 != sixteen) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", unit, " (", layout_.units()[unit].name,
                       "): Grads() and WorkingGrads() in one micro-step; use one of them"));
    }
    return view(holder_[unit]);
  }
  // Reductions finish in submission order, so the free slot used longest ago frees first; a new
  // slot (up to max_slots) beats waiting for it. Slot choice never changes what is
  // communicated, so it may depend on timing.
  int pick = -1;
  for (int i = 0; i < slots_.size(); ++i) {
    if (slots_[i].owner < 0 &&
        (pick < 0 || slots_[i].busy_until.seq < slots_[pick].busy_until.seq)) {
      pick = i;
    }
  }
  const bool busy = pick >= 0 && !slots_[pick].busy_until.work.Test();
  if ((pick < 0 || busy) && slots_.size() < static_cast<int>(max_slots_)) {
    absl::StatusOr<int> added = slots_.Add();
    if (!added.ok()) return added.status();
    pick = *added;
  }
  if (pick < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", slots_.size(),
                     " gradient slots are in use: call GradsReady() for a "
                     "unit before taking the gradients of another"));
  }
  if (absl::Status s = queue.Await(slots_[pick].busy_until); !s.ok()) return s;
  UnitSlots::Slot& slot = slots_[pick];
  if (sixteen) {
    std::fill_n(slot.halves(), padded, uint16_t{0});
  } else {
    std::fill_n(slot.floats(), padded, 0.0f);
  }
  slot.in16 = sixteen;
  slot.owner = static_cast<int>(unit);
  holder_[unit] = pick;
  return view(pick);
}

absl::StatusOr<GradStore::Given> GradStore::Give(size_t unit) {
  const int i = holder_[unit];
  if (i < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("GradsReady(", unit, ") without Grads(", unit, ") in this micro-step"));
  }
  holder_[unit] = -1;
  UnitSlots::Slot& slot = slots_[i];
  slot.owner = -1;
  return Given{i, slot.floats(), slot.halves(), slot.in16};
}

}  // namespace zerorun
