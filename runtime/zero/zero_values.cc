// ZeroEngine's parameter values: where a unit's masters and working weights live (memory, the
// state store, the parameter swap), initialisation, SetTensor / GetTensor and restore.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "offload/nvme_state_store.h"
#include "offload/param_swap.h"
#include "zero/comm_queue.h"
#include "zero/param_store.h"

namespace zerorun {

absl::Status ZeroEngine::ForEachChunk(
    size_t unit, const std::function<absl::Status(size_t k, size_t at, size_t len)>& fn) {
  const auto [first, count] = unit_chunks_[unit];
  const size_t n = Owned(unit);
  for (size_t k = first, at = 0; k < first + count; at += options_.sub_group_size, ++k) {
    if (absl::Status s = fn(k, at, std::min(options_.sub_group_size, n - at)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ZeroEngine::StepOwned(size_t unit, int64_t step, float lr, size_t at, size_t len,
                           float* master, const float* grad, float* m, float* v) {
  if (decay_runs_.empty()) {  // Built once, from the layout.
    for (const UnitLayout& ul : layout_.units()) {
      std::vector<std::pair<size_t, float>> runs{{0, ul.tensors.front().weight_decay}};
      for (const TensorLayout& t : ul.tensors) {
        if (t.weight_decay != runs.back().second) runs.emplace_back(t.offset, t.weight_decay);
      }
      decay_runs_.push_back(std::move(runs));
    }
  }
  const std::vector<std::pair<size_t, float>>& runs = decay_runs_[unit];
  const size_t begin = OwnedBegin(unit) + at, end = begin + len;
  size_t r = 0;
  while (r + 1 < runs.size() && runs[r + 1].first <= begin) ++r;
  for (size_t i = begin; i < end; ++r) {
    const size_t next = r + 1 < runs.size() ? std::min(end, runs[r + 1].first) : end;
    const size_t o = i - begin;
    optimizer_->Step(step, lr, runs[r].second, next - i, master + o, grad + o, m + o, v + o);
    i = next;
  }
}

bool ZeroEngine::MastersAway(size_t unit) const {
  return (nvme_state_ != nullptr && sixteen()) || (params_->swapped(unit) && !sixteen());
}

float* ZeroEngine::MasterData(size_t unit) {
  if (MastersAway(unit)) return nullptr;
  if (sixteen()) return static_cast<float*>(StateData(unit, StateArray::kMaster));
  return static_cast<float*>(params_->working(unit).data) +
         (params_->resident(unit) ? OwnedBegin(unit) : 0);
}

absl::Status ZeroEngine::ReadMasters(size_t unit, float* out) {
  if (!MastersAway(unit)) {
    std::copy_n(MasterData(unit), Owned(unit), out);
    return absl::OkStatus();
  }
  if (!sixteen()) return params_->swap()->Read(unit, out);  // fp32: the shard is the master.
  return ForEachChunk(unit, [&](size_t k, size_t at, size_t) {
    return state_->Read(k, StateArray::kMaster, out + at);
  });
}

absl::Status ZeroEngine::WriteMasters(size_t unit, const float* in) {
  const size_t n = Owned(unit);
  if (!MastersAway(unit)) {
    float* master = MasterData(unit);
    if (master != in) std::copy_n(in, n, master);
  } else if (!sixteen()) {
    return params_->swap()->Write(unit, in);  // Masters and working weights at once.
  } else {
    absl::Status s = ForEachChunk(unit, [&](size_t k, size_t at, size_t) {
      return state_->Write(k, StateArray::kMaster, in + at);
    });
    if (!s.ok()) return s;
  }
  if (!sixteen()) return absl::OkStatus();  // fp32 in memory: the master is the working weight.
  if (!params_->swapped(unit)) {
    FromFloat(options_.dtype, in, OwnedWorking16(unit), n);
    return absl::OkStatus();
  }
  uint16_t* shard = static_cast<uint16_t*>(step16_.view().data);  // The largest such shard's.
  FromFloat(options_.dtype, in, shard, n);
  return params_->swap()->Write(unit, shard);
}

absl::Status ZeroEngine::FinishRestore(int64_t last_step, const LossScaler& scaler,
                                       bool weights_restored) {
  last_step_ = last_step;
  scaler_ = scaler;
  ZeroGrads();
  return weights_restored ? absl::OkStatus() : RestoreWeights();
}

absl::Status ZeroEngine::RestoreWeights() {
  for (size_t ui = 0; ui < units(); ++ui) {
    if (sixteen() && !MastersAway(ui)) {
      if (absl::Status s = WriteMasters(ui, MasterData(ui)); !s.ok()) return s;
    }
    if (params_->resident(ui) && options_.stage > 0) {
      if (absl::Status s = GatherInPlace(*comm_, params_->working(ui)); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ZeroEngine::Init(const InitFn& fn) {
  std::vector<float> full;
  for (size_t ui = 0; ui < units(); ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    if (params_->resident(ui)) {
      full.assign(ul.padded, 0.0f);
      for (size_t t = 0; t < ul.tensors.size(); ++t) {
        fn(ui, t, 0, ul.tensors[t].numel, full.data() + ul.tensors[t].offset);
      }
      const BufferView working = params_->working(ui);
      if (!sixteen()) {
        std::memcpy(working.data, full.data(), working.bytes());
        continue;
      }
      FromFloat(options_.dtype, full.data(), static_cast<uint16_t*>(working.data), ul.padded);
      if (absl::Status s = WriteMasters(ui, full.data() + OwnedBegin(ui)); !s.ok()) return s;
      continue;
    }
    // Stage 3: only this rank's slice of each tensor is ever computed or held.
    full.assign(ul.shard, 0.0f);
    for (size_t t = 0; t < ul.tensors.size(); ++t) {
      const auto [lo, hi] = OwnedPart(ui, t);
      const size_t offset = ul.tensors[t].offset;
      if (lo < hi) fn(ui, t, lo - offset, hi - offset, full.data() + (lo - OwnedBegin(ui)));
    }
    if (absl::Status s = WriteMasters(ui, full.data()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ZeroEngine::SetTensor(size_t unit, size_t tensor, const float* values) {
  const TensorLayout& tl = layout_.units()[unit].tensors[tensor];
  const bool resident = params_->resident(unit);
  // Full copies (resident working weights) take the whole tensor.
  if (resident) {
    void* working = params_->working(unit).data;
    if (sixteen()) {
      FromFloat(options_.dtype, values, static_cast<uint16_t*>(working) + tl.offset, tl.numel);
    } else {
      std::copy_n(values, tl.numel, static_cast<float*>(working) + tl.offset);
    }
  }
  if (resident && !sixteen()) return absl::OkStatus();  // The working copy is the master.
  // The owned part of the masters (and of a stage-3 working shard).
  const auto [lo, hi] = OwnedPart(unit, tensor);
  if (lo >= hi) return absl::OkStatus();
  const size_t begin = OwnedBegin(unit);
  std::vector<float> owned(Owned(unit));
  if (absl::Status s = ReadMasters(unit, owned.data()); !s.ok()) return s;
  std::copy(values + (lo - tl.offset), values + (hi - tl.offset), owned.data() + (lo - begin));
  return WriteMasters(unit, owned.data());
}

absl::Status ZeroEngine::SetTensorAdam(size_t unit, size_t tensor, const float* m, const float* v) {
  const auto [lo, hi] = OwnedPart(unit, tensor);
  if (lo >= hi) return absl::OkStatus();
  const size_t begin = OwnedBegin(unit), offset = layout_.units()[unit].tensors[tensor].offset;
  std::vector<float> chunk;
  return ForEachChunk(unit, [&](size_t k, size_t at, size_t len) -> absl::Status {
    const size_t from = std::max(lo, begin + at), to = std::min(hi, begin + at + len);
    if (from >= to) return absl::OkStatus();
    chunk.resize(len);
    for (auto [array, values] : {std::pair{StateArray::kM, m}, std::pair{StateArray::kV, v}}) {
      if (absl::Status s = state_->Read(k, array, chunk.data()); !s.ok()) return s;
      std::copy(values + (from - offset), values + (to - offset),
                chunk.data() + (from - begin - at));
      if (absl::Status s = state_->Write(k, array, chunk.data()); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

absl::Status ZeroEngine::GetTensor(size_t unit, size_t tensor, float* out) {
  if (absl::Status s = Sync(); !s.ok()) return s;
  const UnitLayout& ul = layout_.units()[unit];
  const TensorLayout& tl = ul.tensors[tensor];
  if (options_.stage == 0 || (params_->resident(unit) && !sixteen())) {
    const float* src =
        sixteen() ? MasterData(unit) : static_cast<const float*>(params_->working(unit).data);
    std::copy_n(src + tl.offset, tl.numel, out);
    return absl::OkStatus();
  }
  std::vector<float> full(ul.padded, 0.0f);
  if (absl::Status s = ReadMasters(unit, full.data() + OwnedBegin(unit)); !s.ok()) return s;
  if (absl::Status s = GatherInPlace(*comm_, HostView(full.data(), ul.padded)); !s.ok()) return s;
  std::copy_n(full.data() + tl.offset, tl.numel, out);
  return absl::OkStatus();
}

SwapReport ZeroEngine::Swap() const {
  SwapReport r;
  auto add = [&](uint64_t file_bytes, const SwapStats& s) {
    r.file_bytes += file_bytes;
    r.bytes_read += s.bytes_read;
    r.bytes_written += s.bytes_written;
    r.read_seconds += s.read_seconds;
    r.write_seconds += s.write_seconds;
  };
  if (nvme_state_ != nullptr) {
    add(nvme_state_->file_bytes(), nvme_state_->stats());
    r.buffer_bytes = nvme_state_->buffer_bytes();
  }
  if (params_->swap() != nullptr) add(params_->swap()->file_bytes(), params_->swap()->stats());
  return r;
}

}  // namespace zerorun
