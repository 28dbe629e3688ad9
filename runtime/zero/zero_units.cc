// ZeroEngine's per-unit machinery: acquire guards, parameter views (widened 16-bit weights,
// stage-3 gathers into a bounded slot pool, reuse and prefetch along the recorded order), and
// gradient slots reduced into the shard accumulator.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "offload/param_swap.h"
#include "zero/engine_internal.h"
#include "zerorun/flight_recorder.h"

namespace zerorun {

UnitGuard::UnitGuard(UnitGuard&& other) noexcept
    : engine_(other.engine_), unit_(other.unit_), base_(other.base_), working_(other.working_) {
  other.engine_ = nullptr;
}

UnitGuard::~UnitGuard() {
  if (engine_ != nullptr) engine_->Release(unit_);
}

float* UnitGuard::tensor(size_t index) const {
  return base_ + engine_->layout().units()[unit_].tensors[index].offset;
}

BufferView UnitGuard::weights(size_t index) const {
  const TensorLayout& tl = engine_->layout().units()[unit_].tensors[index];
  return working_.Slice(tl.offset, tl.numel);
}

std::vector<float*> UnitGuard::tensors() const {
  std::vector<float*> out;
  const size_t n = engine_->layout().units()[unit_].tensors.size();
  for (size_t i = 0; i < n; ++i) out.push_back(tensor(i));
  return out;
}

int ZeroEngine::live_guards(size_t unit) const { return units_[unit].refs; }

void ZeroEngine::KeepForBackward(size_t unit, bool keep) { units_[unit].keep = keep; }

void ZeroEngine::NoteAcquire(size_t unit, Pass pass) {
  if (!first_step_done_) {
    trace_.emplace_back(unit, pass);
    return;
  }
  const bool expected =
      trace_position_ < trace_.size() && trace_[trace_position_] == std::make_pair(unit, pass);
  ++trace_position_;
  if (expected || !prefetch_enabled_) return;
  // Every rank acquires in the same order, so every rank makes this decision at the same point.
  prefetch_enabled_ = false;
  ++stats_.prefetch_misses;
  if (options_.stage == 3) {
    notices_.push_back(absl::StrFormat(
        "rank %d: acquire #%zu (unit %s) differs from the first step's order; prefetching is off "
        "from here, units are gathered on demand",
        comm_->rank(), trace_position_, layout_.units()[unit].name));
  }
}

absl::StatusOr<UnitGuard> ZeroEngine::Acquire(size_t unit, Pass pass) {
  if (unit >= units_.size()) return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  NoteAcquire(unit, pass);
  Unit& u = units_[unit];
  u.last_use = ++clock_;
  u.last_pass = pass;
  float* base = nullptr;
  if (u.weights_ready.seq != 0) {  // The post-step gather of these weights.
    if (absl::Status s = comm_queue_->Await(u.weights_ready); !s.ok()) return s;
    u.weights_ready = CommMark{};
  }
  if (u.resident && !sixteen()) {
    base = u.work32.data();
  } else {
    if (u.view < 0) {
      absl::StatusOr<int> slot = TakeParamSlot(/*prefetch=*/false);
      if (!slot.ok()) return slot.status();
      StartView(unit, *slot);
    }
    if (absl::Status s = comm_queue_->Await(u.view_ready); !s.ok()) return s;
    u.prefetched = false;
    base = (*param_slots_)[u.view].floats();
  }
  const size_t padded = layout_.units()[unit].padded;
  BufferView working = HostView(base, padded);
  if (sixteen()) {
    uint16_t* w16 = u.resident ? u.work16.data() : (*param_slots_)[u.view].halves();
    working = HostView(w16, padded, options_.dtype);
  }
  ++u.refs;
  if (prefetch_enabled_ && first_step_done_ && options_.stage == 3) PrefetchAhead();
  return UnitGuard(this, unit, base, working);
}

absl::StatusOr<int> ZeroEngine::TakeParamSlot(bool prefetch) {
  UnitSlots& slots = *param_slots_;
  for (int i = 0; i < slots.size(); ++i) {
    if (slots[i].owner < 0) return i;
  }
  const size_t live_after = static_cast<size_t>(slots.size() + 1) * slots.floats();
  if (slots.size() == 0 || live_after <= options_.max_live_parameters) return slots.Add();
  // Over the live limit: evict the least recently used unit nobody holds or is about to use.
  int victim = -1;
  for (int i = 0; i < slots.size(); ++i) {
    const Unit& owner = units_[static_cast<size_t>(slots[i].owner)];
    if (owner.refs > 0 || owner.prefetched) continue;
    if (victim < 0 || owner.last_use < units_[static_cast<size_t>(slots[victim].owner)].last_use) {
      victim = i;
    }
  }
  if (victim >= 0) {
    FreeView(static_cast<size_t>(slots[victim].owner));
    return victim;
  }
  if (prefetch) return absl::ResourceExhaustedError("no parameter slot for a prefetch");
  return slots.Add();  // max_live_parameters is a soft limit: correctness comes first.
}

void ZeroEngine::StartView(size_t unit, int slot) {
  Unit& u = units_[unit];
  UnitSlots::Slot& buffer = (*param_slots_)[slot];
  buffer.owner = static_cast<int>(unit);
  u.view = slot;
  const UnitLayout& ul = layout_.units()[unit];
  if (u.resident) {  // 16-bit weights held in full: widen, no communication.
    ToFloat(options_.dtype, u.work16.data(), buffer.floats(), ul.padded);
    u.view_ready = CommMark{};
    return;
  }
  ++stats_.gathers;
  const size_t offset = static_cast<size_t>(comm_->rank()) * ul.shard;
  float* f32 = buffer.floats();
  uint16_t* f16 = buffer.halves();
  const bool wide = !sixteen();
  if (u.on_nvme) {
    // The shard comes from NVMe on the communication thread (overlapped with compute).
  } else if (wide) {
    std::copy(u.work32.begin(), u.work32.end(), f32 + offset);
  } else {
    std::copy(u.work16.begin(), u.work16.end(), f16 + offset);
  }
  const bool read = u.on_nvme;
  u.view_ready =
      comm_queue_->Submit([this, unit, f32, f16, wide, read, offset, &ul]() -> absl::Status {
        const FlightUnit flight(ul.name);
        if (read) {
          void* mine = wide ? static_cast<void*>(f32 + offset) : static_cast<void*>(f16 + offset);
          // Charged as I/O when inline; on the communication thread the caller's wait is.
          const PhaseClock::Scope reading(&phase_clock_, Phase::kIo);
          if (absl::Status s = param_swap_->Read(unit, mine); !s.ok()) return s;
        }
        if (wide) return GatherInPlace(*comm_, HostView(f32, ul.padded));
        const BufferView full16 = HostView(f16, ul.padded, options_.dtype);
        if (absl::Status s = GatherInPlace(*comm_, full16); !s.ok()) return s;
        ToFloat(options_.dtype, f16, f32, ul.padded);
        return absl::OkStatus();
      });
}

void ZeroEngine::FreeView(size_t unit) {
  Unit& u = units_[unit];
  if (u.view < 0) return;
  (*param_slots_)[u.view].owner = -1;
  u.view = -1;
  u.prefetched = false;
}

bool ZeroEngine::ReusedSoon(size_t unit) const {
  if (!first_step_done_ || !prefetch_enabled_) return false;
  size_t distance = 0;
  for (size_t i = trace_position_; i < trace_.size(); ++i) {
    if (trace_[i].first == unit) return distance <= options_.max_reuse_distance;
    distance += layout_.units()[trace_[i].first].numel;
  }
  return false;
}

void ZeroEngine::Release(size_t unit) {
  Unit& u = units_[unit];
  if (--u.refs > 0 || u.view < 0) return;
  if (u.resident) {
    FreeView(unit);  // A widened copy: cheap to redo.
    return;
  }
  if (u.keep && u.last_pass == Pass::kForward) return;
  if (ReusedSoon(unit)) return;
  FreeView(unit);
}

void ZeroEngine::PrefetchAhead() {
  // Elements gathered ahead and not yet acquired bound the look-ahead; of units whose shards
  // come from NVMe, at most param_buffer_count units and max_in_cpu elements of shards.
  size_t ahead = 0, nvme_units = 0, nvme_elements = 0;
  for (size_t i = 0; i < units_.size(); ++i) {
    if (!units_[i].prefetched) continue;
    ahead += layout_.units()[i].padded;
    if (units_[i].on_nvme) ++nvme_units, nvme_elements += layout_.units()[i].shard;
  }
  for (size_t i = trace_position_; i < trace_.size(); ++i) {
    const size_t next = trace_[i].first;
    Unit& u = units_[next];
    if (u.resident || u.view >= 0) continue;
    const size_t size = layout_.units()[next].padded;
    if (ahead + size > options_.prefetch_bucket_size) return;
    if (u.on_nvme) {
      const size_t shard = layout_.units()[next].shard;
      if (nvme_units + 1 > options_.param_buffer_count) return;
      if (nvme_elements + shard > options_.max_in_cpu) return;
      ++nvme_units;
      nvme_elements += shard;
    }
    absl::StatusOr<int> slot = TakeParamSlot(/*prefetch=*/true);
    if (!slot.ok()) return;
    StartView(next, *slot);
    u.prefetched = true;
    u.last_use = ++clock_;
    ++stats_.prefetched;
    ahead += size;
  }
}

}  // namespace zerorun
