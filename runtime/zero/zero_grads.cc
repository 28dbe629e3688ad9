// ZeroEngine's gradients: the backward pass's buffers (the GradStore: full gradients at stages
// 0-1, slots otherwise), their reduction on the communication queue into the shard accumulator
// (the StateStore, in memory or on NVMe), and the owned gradients the step reads.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "zero/comm_queue.h"
#include "zero/grad_store.h"
#include "zerorun/flight_recorder.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

absl::StatusOr<float*> ZeroEngine::Grads(size_t unit) {
  if (unit >= units()) return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  if (!sixteen() && options_.stage < 2) return static_cast<float*>(grads_->full(unit).data);
  absl::StatusOr<BufferView> slot = grads_->Take(unit, /*sixteen=*/false, *comm_queue_);
  if (!slot.ok()) return slot.status();
  return static_cast<float*>(slot->data);
}

absl::StatusOr<BufferView> ZeroEngine::WorkingGrads(size_t unit) {
  if (unit >= units()) return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  if (!sixteen()) {
    absl::StatusOr<float*> g = Grads(unit);
    if (!g.ok()) return g.status();
    return HostView(*g, layout_.units()[unit].padded);
  }
  return grads_->Take(unit, /*sixteen=*/true, *comm_queue_);
}

absl::Status ZeroEngine::GradsReady(size_t unit) {
  if (unit >= units()) return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  if (!sixteen() && options_.stage < 2) return absl::OkStatus();
  absl::StatusOr<GradStore::Given> given = grads_->Give(unit);
  if (!given.ok()) return given.status();
  const size_t padded = layout_.units()[unit].padded;
  if (options_.stage < 2) {  // 16-bit full gradients: accumulate, reduce at Step().
    const BufferView f32 = HostView(given->f32, padded);
    if (given->in16) {
      const BufferView f16 = HostView(given->f16, padded, options_.dtype);
      if (absl::Status s = kernels_->Convert(f16, f32); !s.ok()) return s;
    }
    return kernels_->Accumulate(f32, grads_->full(unit));
  }
  float* g32 = given->in16 ? nullptr : given->f32;
  uint16_t* g16 = given->f16;
  grads_->Busy(given->slot, comm_queue_->Submit([this, unit, g32, g16] {
    return ReduceUnitGrads(unit, g32, g16);
  }));
  return absl::OkStatus();
}

absl::Status ZeroEngine::ReduceUnitGrads(size_t unit, float* g32, uint16_t* g16) {
  const UnitLayout& ul = layout_.units()[unit];
  const FlightUnit flight(ul.name);
  if (!sixteen()) {
    const BufferView full = HostView(g32, ul.padded);
    if (absl::Status s = ReduceScatterInPlace(*comm_, full, ReduceOp::kAvg); !s.ok()) return s;
    return AccumulateGrads(unit, g32 + static_cast<size_t>(comm_->rank()) * ul.shard);
  }
  const BufferView full = HostView(g16, ul.padded, options_.dtype);
  if (g32 != nullptr) {
    if (absl::Status s = kernels_->Convert(HostView(g32, ul.padded), full); !s.ok()) return s;
  }
  if (reduce_out_.size() < ul.shard) reduce_out_.resize(ul.shard);
  float* out = reduce_out_.data();
  if (absl::Status s = comm_->ReduceScatter(full, HostView(out, ul.shard), ReduceOp::kAvg).Wait();
      !s.ok()) {
    return s;
  }
  return AccumulateGrads(unit, out);
}

absl::StatusOr<float*> ZeroEngine::OwnedGrads(size_t unit, std::vector<float>& tmp, bool* direct) {
  const size_t n = Owned(unit), begin = OwnedBegin(unit);
  *direct = true;
  if (grad_bytes() == sizeof(float)) return static_cast<float*>(StateData(unit, StateArray::kGrad));
  if (!sixteen()) return static_cast<float*>(grads_->full(unit).data) + begin;
  *direct = false;
  tmp.resize(n);
  const uint16_t* src = grad_bytes() == 0
                            ? static_cast<const uint16_t*>(grads_->full(unit).data) + begin
                            : static_cast<const uint16_t*>(StateData(unit, StateArray::kGrad));
  const BufferView in = HostView(const_cast<uint16_t*>(src), n, options_.dtype);
  if (absl::Status s = kernels_->Convert(in, HostView(tmp.data(), n)); !s.ok()) return s;
  return tmp.data();
}

BufferView ZeroEngine::GradView(const void* grad, size_t count) const {
  const DType dtype = grad_bytes() == sizeof(float) ? DType::kFp32 : options_.dtype;
  return {const_cast<void*>(grad), count, dtype, Device::Cpu()};
}

absl::Status ZeroEngine::AccumulateGrads(size_t unit, const float* reduced) {
  auto add = [&](const float* in, void* acc, size_t n) {
    return kernels_->Accumulate(HostView(const_cast<float*>(in), n), GradView(acc, n));
  };
  if (void* acc = StateData(unit, StateArray::kGrad); acc != nullptr) {
    return add(reduced, acc, Owned(unit));
  }
  void* io = grad_io_.view().data;
  const float pre = GradPre();
  return ForEachChunk(unit, [&](size_t k, size_t at, size_t len) {
    {
      const PhaseClock::Scope swapping(&phase_clock_, Phase::kIo);  // Inline only (no overlap).
      if (absl::Status read = state_->Read(k, StateArray::kGrad, io); !read.ok()) return read;
    }
    if (absl::Status s = add(reduced + at, io, len); !s.ok()) return s;
    // The chunk's share of the norm, from the sums as they go to disk (the last write wins).
    // In 256-element blocks (the norm's association); 16-bit sums are widened first, fp32 ones
    // are read in place.
    const BufferView sums = GradView(io, len);
    float block[256];
    double squares = 0;
    for (size_t i = 0; i < len; i += 256) {
      const size_t m = std::min<size_t>(256, len - i);
      BufferView part_view = sums.Slice(i, m);
      absl::Status s;
      if (part_view.dtype != DType::kFp32) {
        s = kernels_->Convert(part_view, HostView(block, m));
        part_view = HostView(block, m);
      }
      absl::StatusOr<double> part =
          s.ok() ? kernels_->SumSquares(part_view, pre) : absl::StatusOr<double>(s);
      if (!part.ok()) return part.status();
      squares += *part;
    }
    grad_squares_[k] = squares;
    const PhaseClock::Scope swapping(&phase_clock_, Phase::kIo);
    return state_->Write(k, StateArray::kGrad, io);
  });
}

void ZeroEngine::ZeroGrads() {
  grads_->ZeroFull();
  state_->ZeroGrads();
  std::fill(grad_squares_.begin(), grad_squares_.end(), 0.0);
}

float ZeroEngine::GradPre() const {
  return 1.0f / (static_cast<float>(options_.gradient_accumulation_steps) * scaler_.scale());
}

}  // namespace zerorun
