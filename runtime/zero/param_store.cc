// ParamStore: working weights, views (widened or gathered units in a bounded pool), release and
// reuse, prefetch along the recorded acquire order, and the post-step share of resident units.
#include "zero/param_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "zerorun/flight_recorder.h"

namespace zerorun {

absl::StatusOr<std::unique_ptr<ParamStore>> ParamStore::Create(
    const Layout& layout, const ZeroOptions& options, Communicator* comm, CommQueue* queue,
    PhaseClock* clock, Allocator* allocator, Kernels* kernels, const std::string& swap_dir) {
  std::unique_ptr<ParamStore> store(
      new ParamStore(layout, options, comm, queue, clock, allocator, kernels));
  const DType dtype = options.dtype;
  std::vector<size_t> swapped(layout.units().size(), 0);  // Bytes per unit in the swap file.
  for (size_t i = 0; i < layout.units().size(); ++i) {
    const UnitLayout& ul = layout.units()[i];
    Unit& u = store->units_[i];
    u.resident = options.stage < 3 || ul.numel <= options.param_persistence_threshold;
    u.swapped = !u.resident && options.param_space == MemorySpace::kNvme;
    if (u.swapped) {
      if (ul.shard > options.param_buffer_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("offload_param.buffer_size ", options.param_buffer_size,
                         " elements is smaller than ", "unit ", ul.name, "'s shard of ", ul.shard,
                         ". Fix: raise buffer_size to at least ", ul.shard));
      }
      swapped[i] = ul.shard * SizeOf(dtype);
      continue;
    }
    absl::StatusOr<Buffer> work =
        Buffer::Allocate(*store->allocator_, u.resident ? ul.padded : ul.shard, dtype);
    if (!work.ok()) {
      return absl::Status(work.status().code(),
                          absl::StrCat("weights of unit ", ul.name, ": ", work.status().message()));
    }
    u.work = *std::move(work);
  }
  if (options.param_space == MemorySpace::kNvme) {
    AioOptions aio;
    aio.block_size = options.aio.block_size;
    aio.queue_depth = options.aio.queue_depth;
    absl::StatusOr<std::unique_ptr<ParamSwap>> swap =
        ParamSwap::Create(swap_dir, std::move(swapped), aio);
    if (!swap.ok()) return swap.status();
    store->swap_ = *std::move(swap);
  }
  return store;
}

ParamStore::ParamStore(const Layout& layout, const ZeroOptions& options, Communicator* comm,
                       CommQueue* queue, PhaseClock* clock, Allocator* allocator, Kernels* kernels)
    : layout_(layout),
      options_(options),
      comm_(comm),
      queue_(queue),
      clock_(clock),
      allocator_(allocator),
      kernels_(kernels),
      units_(layout.units().size()),
      // Views: an fp32 area (gathered fp32 weights, or the widening of 16-bit ones) and, for
      // gathers of 16-bit weights, a 16-bit one.
      views_(options.dtype != DType::kFp32 && !options.widen ? 0 : layout.max_padded(),
             options.dtype != DType::kFp32 && options.stage == 3 ? layout.max_padded() : 0,
             options.dtype, allocator) {}

size_t ParamStore::working_bytes() const {
  size_t bytes = 0;
  for (const Unit& u : units_) bytes += u.work.view().bytes();
  return bytes;
}

size_t ParamStore::swapped_bytes() const {
  size_t bytes = 0;
  for (size_t i = 0; i < units_.size(); ++i) {
    if (units_[i].swapped) bytes += layout_.units()[i].shard * SizeOf(options_.dtype);
  }
  return bytes;
}

void ParamStore::FreeViews() {
  for (size_t i = 0; i < units_.size(); ++i) FreeView(i);
}

absl::Status ParamStore::EndStep() {
  if (!first_step_done_) {
    const PhaseClock::Scope waiting(clock_, Phase::kCommWait);
    if (absl::Status s = CheckOrderAcrossRanks(); !s.ok()) return s;
    first_step_done_ = true;
  }
  trace_position_ = 0;
  return absl::OkStatus();
}

void ParamStore::Publish(size_t unit) {
  // On the communication thread with overlap_comm: Acquire(unit) waits for this gather.
  const BufferView full = units_[unit].work.view();
  units_[unit].weights_ready = queue_->Submit([this, full] { return GatherInPlace(*comm_, full); });
}

void ParamStore::NoteAcquire(size_t unit, Pass pass) {
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

absl::StatusOr<ParamStore::View> ParamStore::Acquire(size_t unit, Pass pass) {
  if (unit >= units_.size()) return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  NoteAcquire(unit, pass);
  Unit& u = units_[unit];
  u.last_use = ++clock_tick_;
  u.last_pass = pass;
  float* base = nullptr;
  if (u.weights_ready.seq != 0) {  // The post-step gather of these weights.
    if (absl::Status s = queue_->Await(u.weights_ready); !s.ok()) return s;
    u.weights_ready = CommMark{};
  }
  if (u.resident && !(sixteen() && options_.widen)) {
    base = sixteen() ? nullptr : static_cast<float*>(u.work.view().data);  // No view needed.
  } else {
    if (u.view < 0) {
      absl::StatusOr<int> slot = TakeSlot(/*prefetch=*/false);
      if (!slot.ok()) return slot.status();
      if (absl::Status s = StartView(unit, *slot); !s.ok()) return s;
    }
    if (absl::Status s = queue_->Await(u.view_ready); !s.ok()) return s;
    u.prefetched = false;
    base = views_[u.view].floats();  // nullptr: 16-bit weights, not widened.
  }
  const size_t padded = layout_.units()[unit].padded;
  BufferView working = HostView(base, padded);
  if (sixteen()) {
    uint16_t* w16 =
        u.resident ? static_cast<uint16_t*>(u.work.view().data) : views_[u.view].halves();
    working = HostView(w16, padded, options_.dtype);
  }
  ++u.refs;  // Before the prefetch: held units are not evicted for it.
  if (prefetch_enabled_ && first_step_done_ && options_.stage == 3) {
    if (absl::Status s = PrefetchAhead(); !s.ok()) {
      --u.refs;
      return s;
    }
  }
  return View{base, working};
}

absl::StatusOr<int> ParamStore::TakeSlot(bool prefetch) {
  UnitSlots& slots = views_;
  for (int i = 0; i < slots.size(); ++i) {
    if (slots[i].owner < 0) return i;
  }
  const size_t live_after = static_cast<size_t>(slots.size() + 1) * slots.elements();
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

absl::Status ParamStore::StartView(size_t unit, int slot) {
  Unit& u = units_[unit];
  UnitSlots::Slot& buffer = views_[slot];
  const UnitLayout& ul = layout_.units()[unit];
  if (u.resident) {  // 16-bit weights held in full: widen, no communication.
    if (absl::Status s = kernels_->Convert(u.work.view(), HostView(buffer.floats(), ul.padded));
        !s.ok()) {
      return s;
    }
    buffer.owner = static_cast<int>(unit);
    u.view = slot;
    u.view_ready = CommMark{};
    return absl::OkStatus();
  }
  ++stats_.gathers;
  const size_t offset = static_cast<size_t>(comm_->rank()) * ul.shard;
  float* f32 = buffer.floats();
  uint16_t* f16 = buffer.halves();
  const bool wide = !sixteen();
  if (!u.swapped) {  // Swapped: the shard comes from NVMe on the communication thread.
    const BufferView mine =
        wide ? HostView(f32 + offset, ul.shard) : HostView(f16 + offset, ul.shard, options_.dtype);
    if (absl::Status s = kernels_->Convert(u.work.view(), mine); !s.ok()) return s;
  }
  buffer.owner = static_cast<int>(unit);
  u.view = slot;
  const bool read = u.swapped;
  u.view_ready = queue_->Submit([this, unit, f32, f16, wide, read, offset, &ul]() -> absl::Status {
    const FlightUnit flight(ul.name);
    if (read) {
      void* mine = wide ? static_cast<void*>(f32 + offset) : static_cast<void*>(f16 + offset);
      // Charged as I/O when inline; on the communication thread the caller's wait is.
      const PhaseClock::Scope reading(clock_, Phase::kIo);
      if (absl::Status s = swap_->Read(unit, mine); !s.ok()) return s;
    }
    if (wide) return GatherInPlace(*comm_, HostView(f32, ul.padded));
    const BufferView full16 = HostView(f16, ul.padded, options_.dtype);
    if (absl::Status s = GatherInPlace(*comm_, full16); !s.ok()) return s;
    if (f32 == nullptr) return absl::OkStatus();
    return kernels_->Convert(full16, HostView(f32, ul.padded));  // Widened.
  });
  return absl::OkStatus();
}

void ParamStore::FreeView(size_t unit) {
  Unit& u = units_[unit];
  if (u.view < 0) return;
  (views_)[u.view].owner = -1;
  u.view = -1;
  u.prefetched = false;
}

bool ParamStore::ReusedSoon(size_t unit) const {
  if (!first_step_done_ || !prefetch_enabled_) return false;
  size_t distance = 0;
  for (size_t i = trace_position_; i < trace_.size(); ++i) {
    if (trace_[i].first == unit) return distance <= options_.max_reuse_distance;
    distance += layout_.units()[trace_[i].first].numel;
  }
  return false;
}

void ParamStore::Release(size_t unit) {
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

absl::Status ParamStore::PrefetchAhead() {
  // Elements gathered ahead and not yet acquired bound the look-ahead; of units whose shards
  // come from NVMe, at most param_buffer_count units and max_in_cpu elements of shards.
  size_t ahead = 0, nvme_units = 0, nvme_elements = 0;
  for (size_t i = 0; i < units_.size(); ++i) {
    if (!units_[i].prefetched) continue;
    ahead += layout_.units()[i].padded;
    if (units_[i].swapped) ++nvme_units, nvme_elements += layout_.units()[i].shard;
  }
  for (size_t i = trace_position_; i < trace_.size(); ++i) {
    const size_t next = trace_[i].first;
    Unit& u = units_[next];
    if (u.resident || u.view >= 0) continue;
    const size_t size = layout_.units()[next].padded;
    if (ahead + size > options_.prefetch_bucket_size) return absl::OkStatus();
    if (u.swapped) {
      const size_t shard = layout_.units()[next].shard;
      if (nvme_units + 1 > options_.param_buffer_count) return absl::OkStatus();
      if (nvme_elements + shard > options_.max_in_cpu) return absl::OkStatus();
      ++nvme_units;
      nvme_elements += shard;
    }
    absl::StatusOr<int> slot = TakeSlot(/*prefetch=*/true);
    if (!slot.ok()) return absl::OkStatus();  // No room to look further ahead.
    if (absl::Status s = StartView(next, *slot); !s.ok()) return s;
    u.prefetched = true;
    u.last_use = ++clock_tick_;
    ++stats_.prefetched;
    ahead += size;
  }
  return absl::OkStatus();
}

absl::Status ParamStore::CheckOrderAcrossRanks() {
  // FNV-1a over the (unit, pass) sequence; its 8 bytes b_i and b_i^2 are summed over ranks in
  // fp32 (exact: < 2^24), and N * sum(b^2) == sum(b)^2 for every byte iff all ranks agree.
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { hash = (hash ^ v) * 1099511628211ull; };
  mix(trace_.size());
  for (const auto& [unit, pass] : trace_) mix(unit * 2 + (pass == Pass::kBackward ? 1 : 0));
  float sums[16];
  for (int i = 0; i < 8; ++i) {
    const float b = static_cast<float>((hash >> (8 * i)) & 0xff);
    sums[i] = b;
    sums[8 + i] = b * b;
  }
  if (absl::Status s = comm_->AllReduce(HostView(sums, 16), ReduceOp::kSum).Wait(); !s.ok()) {
    return s;
  }
  const double n = comm_->world_size();
  for (int i = 0; i < 8; ++i) {
    if (n * sums[8 + i] != static_cast<double>(sums[i]) * sums[i]) {
      stats_.order_consistent = false;
    }
  }
  if (!stats_.order_consistent) {
    prefetch_enabled_ = false;
    notices_.push_back(absl::StrCat(
        "rank ", comm_->rank(),
        ": the ranks acquired their units in different orders in the first step; prefetching is "
        "off (every rank must acquire in the same order)"));
  }
  return absl::OkStatus();
}

}  // namespace zerorun
