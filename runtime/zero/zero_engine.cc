// ZeroEngine set-up, parameter values, the optimizer step (reduce, unscale, norm, overflow skip,
// clip, sharded AdamW on fp32 masters, write-back and gather) and the memory report.
#include "zerorun/zero_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "offload/optimizer_swap.h"
#include "offload/param_swap.h"
#include "offload/swap_dir.h"
#include "zero/engine_internal.h"
#include "zerorun/flight_recorder.h"

namespace zerorun {

absl::StatusOr<std::unique_ptr<ZeroEngine>> ZeroEngine::Create(const std::vector<UnitSpec>& units,
                                                               const ZeroOptions& options,
                                                               Communicator* comm) {
  if (options.stage < 0 || options.stage > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("ZeRO stage ", options.stage, " is not supported (0, 1, 2 or 3)"));
  }
  if (options.gradient_accumulation_steps < 1) {
    return absl::InvalidArgumentError("gradient_accumulation_steps must be >= 1");
  }
  if (options.grad_slots < 1) return absl::InvalidArgumentError("grad_slots must be >= 1");
  if (options.param_space == MemorySpace::kNvme && options.param_nvme_path.empty()) {
    return absl::InvalidArgumentError("offload_param device nvme needs an nvme_path");
  }
  if (options.optimizer_space == MemorySpace::kNvme && options.nvme_path.empty()) {
    return absl::InvalidArgumentError("offload_optimizer device nvme needs an nvme_path");
  }
  if (options.sub_group_size < 1) return absl::InvalidArgumentError("sub_group_size must be >= 1");
  if (options.optimizer_space != MemorySpace::kDevice && options.stage < 1) {
    return absl::InvalidArgumentError(
        "offload_optimizer needs ZeRO stage 1, 2 or 3 (the optimizer state is sharded first)");
  }
  if (options.param_space != MemorySpace::kDevice && options.stage != 3) {
    return absl::InvalidArgumentError("offload_param needs ZeRO stage 3");
  }
  if (!(options.optimizer_ratio >= 0 && options.optimizer_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("offload_optimizer.ratio ", options.optimizer_ratio, " is not in [0, 1]"));
  }
  if (options.dtype == DType::kFp16 && options.loss_scale.loss_scale == 0 &&
      (options.loss_scale.window < 1 || options.loss_scale.min_scale <= 0)) {
    return absl::InvalidArgumentError(
        "dynamic loss scaling needs loss_scale_window >= 1 and min_loss_scale > 0");
  }
  absl::StatusOr<Layout> layout = Layout::Build(units, comm->world_size(), options.align);
  if (!layout.ok()) return layout.status();
  std::unique_ptr<ZeroEngine> engine(new ZeroEngine(*std::move(layout), options, comm));
  if (absl::Status s = engine->CreateSwaps(); !s.ok()) return s;
  return engine;
}

absl::Status ZeroEngine::CreateSwaps() {
  AioOptions aio;
  aio.block_size = options_.aio.block_size;
  aio.queue_depth = options_.aio.queue_depth;
  auto dir = [&](const std::string& path, const char* key) -> absl::StatusOr<std::string> {
    for (const auto& d : swap_dirs_) {
      if (d->path() == absl::StrCat(path, "/zerorun-", options_.swap_tag)) return d->path();
    }
    absl::StatusOr<std::unique_ptr<SwapDir>> made = SwapDir::Create(path, options_.swap_tag, key);
    if (!made.ok()) return made.status();
    swap_dirs_.push_back(*std::move(made));
    return swap_dirs_.back()->path();
  };
  if (options_.optimizer_space == MemorySpace::kNvme) {
    // The optimizer visits units in order, each in chunks of at most sub_group_size elements.
    std::vector<size_t> chunks;
    for (size_t ui = 0; ui < units_.size(); ++ui) {
      const size_t first = chunks.size();
      for (size_t done = 0; done < Owned(ui); done += options_.sub_group_size) {
        chunks.push_back(std::min(options_.sub_group_size, Owned(ui) - done));
      }
      unit_chunks_.emplace_back(first, chunks.size() - first);
    }
    OptimizerSwap::Arrays arrays;
    arrays.master = sixteen() ? sizeof(float) : 0;
    if (grads_on_nvme_) {
      arrays.grad = state_.accumulator() == Accumulator::kFp32 ? sizeof(float) : sizeof(uint16_t);
    }
    absl::StatusOr<std::string> at = dir(options_.nvme_path, "offload_optimizer.nvme_path");
    if (!at.ok()) return at.status();
    absl::StatusOr<std::unique_ptr<OptimizerSwap>> swap =
        OptimizerSwap::Create(*at, arrays, std::move(chunks), aio);
    if (!swap.ok()) return swap.status();
    swap_ = *std::move(swap);
  }
  if (options_.param_space != MemorySpace::kNvme) return absl::OkStatus();
  std::vector<size_t> bytes(units_.size(), 0);
  const size_t element = sixteen() ? sizeof(uint16_t) : sizeof(float);
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    if (!units_[ui].on_nvme) continue;
    const UnitLayout& ul = layout_.units()[ui];
    if (ul.shard > options_.param_buffer_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("offload_param.buffer_size ", options_.param_buffer_size,
                       " elements is smaller than ", "unit ", ul.name, "'s shard of ", ul.shard,
                       ". Fix: raise buffer_size to at least ", ul.shard));
    }
    bytes[ui] = ul.shard * element;
  }
  absl::StatusOr<std::string> at = dir(options_.param_nvme_path, "offload_param.nvme_path");
  if (!at.ok()) return at.status();
  absl::StatusOr<std::unique_ptr<ParamSwap>> swap = ParamSwap::Create(*at, std::move(bytes), aio);
  if (!swap.ok()) return swap.status();
  param_swap_ = *std::move(swap);
  return absl::OkStatus();
}

ZeroEngine::ZeroEngine(Layout layout, const ZeroOptions& options, Communicator* comm)
    : layout_(std::move(layout)), options_(options), comm_(comm) {
  size_t max_unit = 0, state = 0;
  units_.resize(layout_.units().size());
  for (size_t i = 0; i < units_.size(); ++i) {
    const UnitLayout& ul = layout_.units()[i];
    Unit& u = units_[i];
    u.resident = options_.stage < 3 || ul.numel <= options_.param_persistence_threshold;
    u.on_nvme = !u.resident && options_.param_space == MemorySpace::kNvme;
    const size_t held = u.on_nvme ? 0 : u.resident ? ul.padded : ul.shard;
    if (sixteen()) {
      u.work16.assign(held, 0);
    } else {
      u.work32.assign(held, 0.0f);
    }
    if (options_.stage < 2 && sixteen()) u.grad16.assign(ul.padded, 0);
    if (options_.stage < 2 && !sixteen()) u.grad32.assign(ul.padded, 0.0f);
    u.state_base = state;
    state += Owned(i);
    max_unit = std::max(max_unit, ul.padded);
  }
  const Accumulator accumulator = options_.stage < 2                       ? Accumulator::kNone
                                  : sixteen() && !options_.grad_accum_fp32 ? Accumulator::kSixteen
                                                                           : Accumulator::kFp32;
  // The accumulator goes to NVMe with the optimizer state, as DeepSpeed swaps its gradients
  // (measured: keeping it in memory saves ~5% of the step for 2-4 bytes a parameter of RAM).
  grads_on_nvme_ =
      options_.optimizer_space == MemorySpace::kNvme && accumulator != Accumulator::kNone;
  state_ = ShardState(state, sixteen(), accumulator, options_.optimizer_space,
                      grads_on_nvme_ ? MemorySpace::kNvme : MemorySpace::kDevice);
  if (grads_on_nvme_) {
    const size_t chunk = std::min(options_.sub_group_size, max_unit);
    (accumulator == Accumulator::kFp32 ? grad_io32_.resize(chunk) : grad_io16_.resize(chunk));
  }
  for (size_t i = 0; i < units_.size(); ++i) {
    if (units_[i].on_nvme) {
      step32_.resize(std::max(step32_.size(), sixteen() ? 0 : Owned(i)));
      step16_.resize(std::max(step16_.size(), sixteen() ? Owned(i) : 0));
    }
  }
  param_slots_ = std::make_unique<Slots>(max_unit, sixteen() && options_.stage == 3 ? max_unit : 0);
  grad_slots_ = std::make_unique<Slots>(max_unit, sixteen() ? max_unit : 0);
  comm_async_ = options_.overlap_comm && comm_->world_size() > 1;
  comm_stream_ = CreateCpuStream(comm_async_);
  if (options_.dtype == DType::kFp16) state_.scaler() = LossScaler(options_.loss_scale);
}

ZeroEngine::~ZeroEngine() { (void)comm_stream_->Synchronize(); }

size_t ZeroEngine::Owned(size_t unit) const {
  return options_.stage == 0 ? layout_.units()[unit].padded : layout_.units()[unit].shard;
}

size_t ZeroEngine::OwnedBegin(size_t unit) const {
  return options_.stage == 0 ? 0 : static_cast<size_t>(comm_->rank()) * layout_.units()[unit].shard;
}

std::pair<size_t, size_t> ZeroEngine::OwnedPart(size_t unit, size_t tensor) const {
  const TensorLayout& tl = layout_.units()[unit].tensors[tensor];
  const size_t begin = OwnedBegin(unit), end = begin + Owned(unit);
  return {std::max(begin, tl.offset), std::min(end, tl.offset + tl.numel)};
}

absl::StatusOr<float*> ZeroEngine::OwnedGrads(size_t unit, std::vector<float>& tmp, bool* direct) {
  Unit& u = units_[unit];
  const size_t n = Owned(unit), begin = OwnedBegin(unit);
  *direct = true;
  if (grads_on_nvme_) {
    *direct = false;
    tmp.assign(n, 0.0f);
    if (!u.grads_on_disk) return tmp.data();
    absl::Status s = ForEachChunk(unit, [&](size_t k, size_t at, size_t len) {
      void* io = grad_io32_.empty() ? static_cast<void*>(grad_io16_.data()) : grad_io32_.data();
      const PhaseClock::Scope reading(&phase_clock_, Phase::kIo);
      if (absl::Status read = swap_->ReadArray(k, SwapArray::kGrad, io); !read.ok()) return read;
      WidenSwappedGrads(unit, io, len, tmp.data() + at);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return tmp.data();
  }
  if (state_.acc32() != nullptr) return state_.acc32() + u.state_base;
  if (!sixteen()) return u.grad32.data() + begin;
  *direct = false;
  tmp.resize(n);
  const uint16_t* src =
      state_.acc16() == nullptr ? u.grad16.data() + begin : state_.acc16() + u.state_base;
  ToFloat(options_.dtype, src, tmp.data(), n);
  return tmp.data();
}

void ZeroEngine::WidenSwappedGrads(size_t unit, const void* grad, size_t count, float* out) const {
  if (!units_[unit].grads_on_disk) {
    std::fill_n(out, count, 0.0f);
  } else if (state_.accumulator() == Accumulator::kFp32) {
    std::copy_n(static_cast<const float*>(grad), count, out);
  } else {
    ToFloat(options_.dtype, static_cast<const uint16_t*>(grad), out, count);
  }
}

absl::Status ZeroEngine::AccumulateOnNvme(size_t unit, const float* reduced) {
  Unit& u = units_[unit];
  const bool wide = state_.accumulator() == Accumulator::kFp32;
  void* io = wide ? static_cast<void*>(grad_io32_.data()) : grad_io16_.data();
  absl::Status s = ForEachChunk(unit, [&](size_t k, size_t at, size_t len) {
    const PhaseClock::Scope swapping(&phase_clock_, Phase::kIo);  // Inline only (overlap_comm off).
    if (u.grads_on_disk) {
      if (absl::Status read = swap_->ReadArray(k, SwapArray::kGrad, io); !read.ok()) return read;
    } else if (wide) {
      std::fill_n(grad_io32_.begin(), len, 0.0f);  // The in-memory accumulator's zero start.
    } else {
      std::fill_n(grad_io16_.begin(), len, 0);
    }
    if (wide) {
      for (size_t i = 0; i < len; ++i) grad_io32_[i] += reduced[at + i];
    } else {
      AddFloatInto(options_.dtype, reduced + at, grad_io16_.data(), len);
    }
    return swap_->WriteArray(k, SwapArray::kGrad, io);
  });
  if (!s.ok()) return s;
  u.grads_on_disk = true;
  return absl::OkStatus();
}

void ZeroEngine::ZeroGrads() {
  for (Unit& u : units_) {
    u.grads_on_disk = false;
    std::fill(u.grad32.begin(), u.grad32.end(), 0.0f);
    std::fill(u.grad16.begin(), u.grad16.end(), 0);
  }
  state_.ZeroAccumulator();
}

absl::StatusOr<StepResult> ZeroEngine::Step(int64_t step, float lr, float value) {
  const PhaseClock::Scope optimizer(&phase_clock_, Phase::kOptimizer);
  absl::StatusOr<StepResult> result = StepPhases(step, lr, value);
  step_times_ = phase_clock_.Lap();
  return result;
}

// Step()'s body, charged to the optimizer phase; collectives and swaps inside open their own.
absl::StatusOr<StepResult> ZeroEngine::StepPhases(int64_t step, float lr, float value) {
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    if (units_[ui].grad_slot >= 0 || units_[ui].refs > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", ui, " (", layout_.units()[ui].name, ") ",
                       units_[ui].refs > 0 ? "is still acquired by a live guard"
                                           : "has gradients that were never marked ready",
                       " at Step()"));
    }
  }
  if (absl::Status s = Sync(); !s.ok()) return s;
  for (size_t ui = 0; ui < units_.size(); ++ui) FreeView(ui);
  if (!first_step_done_) {
    const PhaseClock::Scope waiting(&phase_clock_, Phase::kCommWait);
    if (absl::Status s = CheckOrderAcrossRanks(); !s.ok()) return s;
    first_step_done_ = true;
  }
  trace_position_ = 0;
  // 1. Stages 0/1: average the full gradients over ranks (stages 2/3 did it per unit).
  std::vector<float> tmp;
  for (size_t ui = 0; ui < units_.size() && options_.stage < 2; ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    Unit& u = units_[ui];
    const FlightUnit flight(ul.name);
    const PhaseClock::Scope waiting(&phase_clock_, Phase::kCommWait);
    absl::Status s;
    if (!sixteen()) {
      const BufferView full = HostView(u.grad32.data(), ul.padded);
      s = options_.stage == 0 ? comm_->AllReduce(full, ReduceOp::kAvg).Wait()
                              : ReduceScatterInPlace(*comm_, full, ReduceOp::kAvg);
    } else {
      // In the working dtype, as DeepSpeed: reduce-scatter, round the own shard, (stage 0) gather.
      const BufferView full = HostView(u.grad16.data(), ul.padded, options_.dtype);
      tmp.resize(ul.shard);
      s = comm_->ReduceScatter(full, HostView(tmp.data(), ul.shard), ReduceOp::kAvg).Wait();
      const size_t mine = static_cast<size_t>(comm_->rank()) * ul.shard;
      if (s.ok()) FromFloat(options_.dtype, tmp.data(), u.grad16.data() + mine, ul.shard);
      if (s.ok() && options_.stage == 0) s = GatherInPlace(*comm_, full);
    }
    if (!s.ok()) return s;
  }
  // 2. One multiplier for micro-step averaging and unscaling, then the global norm.
  const float pre =
      1.0f / (static_cast<float>(options_.gradient_accumulation_steps) * state_.scaler().scale());
  double local = 0;
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    bool direct = false;
    absl::StatusOr<float*> grads = OwnedGrads(ui, tmp, &direct);
    if (!grads.ok()) return grads.status();
    float* g = *grads;
    const size_t n = Owned(ui);
    if (pre != 1.0f) {
      for (size_t i = 0; i < n; ++i) g[i] *= pre;
    }
    for (size_t i = 0; i < n; ++i) local += static_cast<double>(g[i]) * g[i];
  }
  // One all-reduce for the squared norm (stage 0 holds it whole already) and the caller's value.
  float sums[2] = {options_.stage > 0 ? static_cast<float>(local) : 0.0f, value};
  if (absl::Status s = phase_clock_.Charge(
          Phase::kCommWait,
          [&] { return comm_->AllReduce(HostView(sums, 2), ReduceOp::kSum).Wait(); });
      !s.ok()) {
    return s;
  }
  const float total = options_.stage > 0 ? sums[0] : static_cast<float>(local);
  StepResult result;
  result.mean_value = sums[1] / static_cast<float>(comm_->world_size());
  result.grad_norm = std::sqrt(total);
  if (!std::isfinite(result.grad_norm)) {
    // Overflow (fp16) or a NaN: every rank sees the same all-reduced norm and skips together.
    result.skipped = true;
    state_.scaler().Update(true);
    result.loss_scale = state_.scaler().scale();
    ZeroGrads();
    return result;
  }
  state_.scaler().Update(false);
  result.loss_scale = state_.scaler().scale();
  if (options_.gradient_clipping > 0) {
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
    result.clip_coef = std::min(1.0f, options_.gradient_clipping / (result.grad_norm + 1e-6f));
  }
  // 3. AdamW on the fp32 masters this rank owns, write-back, then share the working weights.
  AdamWHyper hyper = options_.adam;
  hyper.lr = lr;
  if (swap_ != nullptr) {
    if (absl::Status s = phase_clock_.Charge(Phase::kIo, [&] { return swap_->Begin(); }); !s.ok()) {
      return s;
    }
  }
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    Unit& u = units_[ui];
    const size_t n = Owned(ui), begin = OwnedBegin(ui);
    // 16-bit gradients are widened again rather than kept in fp32 since the norm pass: one
    // unit's scratch instead of a 4P/N buffer, for a cheap second conversion. Gradients in the
    // optimizer swap arrive with their chunk and are widened and scaled there the same way.
    auto scale = [&](float* g, size_t count, bool direct) {
      if (!direct && pre != 1.0f) {
        for (size_t i = 0; i < count; ++i) g[i] *= pre;
      }
      if (options_.gradient_clipping > 0) {
        for (size_t i = 0; i < count; ++i) g[i] *= result.clip_coef;  // Also at 1, as torch.
      }
    };
    float* g = nullptr;
    if (!grads_on_nvme_) {
      bool direct = false;
      absl::StatusOr<float*> grads = OwnedGrads(ui, tmp, &direct);
      if (!grads.ok()) return grads.status();
      g = *grads;
      scale(g, n, direct);
    }
    // The masters: in memory, read here from the parameter swap (fp32 stage 3: the shard is the
    // master), or chunk by chunk from the optimizer swap (16-bit). New 16-bit weights go to the
    // working copy, or to a scratch shard bound for the parameter swap.
    float* master = Master(ui);
    if (master == nullptr && !sixteen()) {
      master = step32_.data();
      if (absl::Status s =
              phase_clock_.Charge(Phase::kIo, [&] { return param_swap_->Read(ui, master); });
          !s.ok()) {
        return s;
      }
    }
    uint16_t* w16 = !sixteen()  ? nullptr
                    : u.on_nvme ? step16_.data()
                                : u.work16.data() + (u.resident ? begin : 0);
    if (swap_ == nullptr) {
      AdamWStepReference(hyper, step, n, master, g, state_.exp_avg() + u.state_base,
                         state_.exp_avg_sq() + u.state_base);
      if (w16 != nullptr) FromFloat(options_.dtype, master, w16, n);
    } else {
      // m and v (and 16-bit's masters) come from NVMe chunk by chunk (AdamW is element-wise:
      // the same results).
      absl::Status s = ForEachChunk(ui, [&](size_t k, size_t at, size_t len) {
        absl::StatusOr<OptimizerSwap::Chunk> chunk =
            phase_clock_.Charge(Phase::kIo, [&] { return swap_->Acquire(k); });
        if (!chunk.ok()) return chunk.status();
        float* mk = chunk->master != nullptr ? chunk->master : master + at;
        float* gk = grads_on_nvme_ ? nullptr : g + at;
        if (grads_on_nvme_) {
          tmp.resize(len);
          gk = tmp.data();
          WidenSwappedGrads(ui, chunk->grad, len, gk);
          scale(gk, len, /*direct=*/false);
        }
        AdamWStepReference(hyper, step, len, mk, gk, chunk->m, chunk->v);
        if (w16 != nullptr) FromFloat(options_.dtype, mk, w16 + at, len);
        phase_clock_.Charge(Phase::kIo, [&] { swap_->Release(k); });
        return absl::OkStatus();
      });
      if (!s.ok()) return s;
    }
    if (u.on_nvme) {
      const void* shard = sixteen() ? static_cast<const void*>(w16) : master;
      if (absl::Status s =
              phase_clock_.Charge(Phase::kIo, [&] { return param_swap_->Write(ui, shard); });
          !s.ok()) {
        return s;
      }
    }
    if (u.resident && options_.stage > 0) {
      // On the communication thread with overlap_comm: Acquire(unit) waits for this gather.
      uint16_t* w16 = u.work16.data();
      float* w32 = u.work32.data();
      const size_t shard = ul.shard;
      const bool half = sixteen();
      const size_t padded = shard * static_cast<size_t>(comm_->world_size());
      const BufferView full = half ? HostView(w16, padded, options_.dtype) : HostView(w32, padded);
      u.weights_ready = Submit([this, full] { return GatherInPlace(*comm_, full); });
    }
  }
  if (swap_ != nullptr) {
    // m and v written back.
    if (absl::Status s = phase_clock_.Charge(Phase::kIo, [&] { return swap_->Finish(); });
        !s.ok()) {
      return s;
    }
  }
  state_.set_last_step(step);
  ZeroGrads();
  if (absl::Status s = comm_stream_->status(); !s.ok()) return s;  // Inline gathers' errors.
  return result;
}

MemoryReport ZeroEngine::Memory() const {
  MemoryReport m;
  size_t params_nvme = 0;  // Shards in the parameter swap.
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const Unit& u = units_[ui];
    m.params += u.work32.size() * sizeof(float) + u.work16.size() * sizeof(uint16_t);
    m.grads += u.grad32.size() * sizeof(float) + u.grad16.size() * sizeof(uint16_t);
    if (u.on_nvme) {
      params_nvme += layout_.units()[ui].shard * (sixteen() ? sizeof(uint16_t) : sizeof(float));
    }
  }
  m.params += params_nvme;
  m.master = state_.master_bytes();
  m.grads += state_.accumulator_bytes();
  m.optimizer = state_.optimizer_bytes();
  m.scratch = grad_slots_->bytes() + (step32_.size() + grad_io32_.size()) * sizeof(float) +
              (step16_.size() + grad_io16_.size()) * sizeof(uint16_t);
  m.live = param_slots_->bytes();
  // Placement: the offloaded share of the optimizer state (kNvme: all of it, the masters
  // included where they are not the fp32 weights themselves, and the gradient accumulator), and
  // stage 3's parameter shards.
  const double ratio =
      options_.optimizer_space == MemorySpace::kDevice ? 0 : options_.optimizer_ratio;
  const size_t offloaded =
      options_.optimizer_space == MemorySpace::kNvme
          ? m.optimizer + m.master + (grads_on_nvme_ ? state_.accumulator_bytes() : 0)
          : static_cast<size_t>(ratio * static_cast<double>(m.master + m.optimizer));
  const size_t params_away = options_.param_space == MemorySpace::kHost   ? m.params
                             : options_.param_space == MemorySpace::kNvme ? params_nvme
                                                                          : 0;
  auto at = [&](MemorySpace space) -> size_t& {
    return space == MemorySpace::kNvme ? m.nvme : space == MemorySpace::kHost ? m.host : m.device;
  };
  at(options_.optimizer_space) += offloaded;
  at(options_.param_space) += params_away;
  m.device += m.total() - offloaded - params_away;
  return m;
}

GatherStats ZeroEngine::gather_stats() const { return stats_; }

}  // namespace zerorun
