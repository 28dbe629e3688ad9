// ZeroEngine set-up, parameter values, the optimizer step (reduce, unscale, norm, overflow skip,
// clip, sharded AdamW on fp32 masters, write-back and gather) and the memory report.
#include "zerorun/zero_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "offload/optimizer_swap.h"
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
  if (options.param_space == MemorySpace::kNvme) {
    return absl::UnimplementedError(
        "offload_param to nvme is not built yet; use device \"cpu\" or \"none\"");
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
  if (options.optimizer_space == MemorySpace::kNvme) {
    // The optimizer visits units in order, each in chunks of at most sub_group_size elements.
    std::vector<size_t> chunks;
    for (size_t ui = 0; ui < engine->units_.size(); ++ui) {
      const size_t first = chunks.size();
      for (size_t done = 0; done < engine->Owned(ui); done += options.sub_group_size) {
        chunks.push_back(std::min(options.sub_group_size, engine->Owned(ui) - done));
      }
      engine->unit_chunks_.emplace_back(first, chunks.size() - first);
    }
    AioOptions aio;
    aio.block_size = options.aio.block_size;
    aio.queue_depth = options.aio.queue_depth;
    absl::StatusOr<std::unique_ptr<OptimizerSwap>> swap =
        OptimizerSwap::Create(options.nvme_path, options.swap_tag, std::move(chunks), aio);
    if (!swap.ok()) return swap.status();
    engine->swap_ = *std::move(swap);
  }
  return engine;
}

ZeroEngine::ZeroEngine(Layout layout, const ZeroOptions& options, Communicator* comm)
    : layout_(std::move(layout)), options_(options), comm_(comm) {
  size_t max_unit = 0, state = 0;
  units_.resize(layout_.units().size());
  for (size_t i = 0; i < units_.size(); ++i) {
    const UnitLayout& ul = layout_.units()[i];
    Unit& u = units_[i];
    u.resident = options_.stage < 3 || ul.numel <= options_.param_persistence_threshold;
    const size_t held = u.resident ? ul.padded : ul.shard;
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
  state_ = ShardState(state, sixteen(), accumulator, options_.optimizer_space);
  param_slots_ = std::make_unique<Slots>(max_unit, sixteen() && options_.stage == 3 ? max_unit : 0);
  grad_slots_ = std::make_unique<Slots>(max_unit, sixteen() ? max_unit : 0);
  worker_ = std::make_unique<CommWorker>(options_.overlap_comm && comm_->world_size() > 1);
  if (options_.dtype == DType::kFp16) state_.scaler() = LossScaler(options_.loss_scale);
}

ZeroEngine::~ZeroEngine() { (void)worker_->Drain(); }

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

float* ZeroEngine::Master(size_t unit) {
  Unit& u = units_[unit];
  if (sixteen()) return state_.master() + u.state_base;
  return u.work32.data() + (u.resident ? OwnedBegin(unit) : 0);
}

size_t ZeroEngine::shard_offset(size_t unit) const { return units_[unit].state_base; }

const float* ZeroEngine::master(size_t unit) const {
  return const_cast<ZeroEngine*>(this)->Master(unit);
}

absl::StatusOr<std::vector<ZeroEngine::Span>> ZeroEngine::ShardSpans() {
  if (swap_ != nullptr) {
    return absl::UnimplementedError(
        "checkpoints of an optimizer offloaded to nvme are not built yet (its m and v are in " +
        swap_->dir() + ")");
  }
  if (absl::Status s = worker_->Drain(); !s.ok()) return s;
  std::vector<size_t> order(units_.size());  // Units by state offset.
  for (size_t ui = 0; ui < order.size(); ++ui) order[ui] = ui;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return units_[a].state_base < units_[b].state_base; });
  std::vector<Span> spans;
  for (size_t ui : order) {
    if (Owned(ui) > 0) spans.push_back({Master(ui), Owned(ui)});
  }
  spans.push_back({state_.exp_avg(), state_.elements()});
  spans.push_back({state_.exp_avg_sq(), state_.elements()});
  return spans;
}

absl::Status ZeroEngine::FinishRestore(int64_t last_step, const LossScaler& scaler) {
  state_.set_last_step(last_step);
  state_.scaler() = scaler;
  state_.ZeroAccumulator();
  ZeroGrads();
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    Unit& u = units_[ui];
    const size_t count = Owned(ui), begin = OwnedBegin(ui);
    if (sixteen()) {
      FromFloat(options_.dtype, Master(ui), u.work16.data() + (u.resident ? begin : 0), count);
    }
    if (u.resident && options_.stage > 0) {
      const absl::Status s = sixteen() ? comm_->AllGather16(u.work16.data(), ul.shard)
                                       : comm_->AllGather(u.work32.data(), ul.shard);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ZeroEngine::RestoreShard(const float* masters, const float* exp_avg,
                                      const float* exp_avg_sq, int64_t last_step,
                                      const LossScaler& scaler) {
  absl::StatusOr<std::vector<Span>> spans = ShardSpans();
  if (!spans.ok()) return spans.status();
  const size_t n = state_.elements();
  std::copy_n(exp_avg, n, state_.exp_avg());
  std::copy_n(exp_avg_sq, n, state_.exp_avg_sq());
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    std::copy_n(masters + units_[ui].state_base, Owned(ui), Master(ui));
  }
  return FinishRestore(last_step, scaler);
}

void ZeroEngine::Init(const InitFn& fn) {
  std::vector<float> full;
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    Unit& u = units_[ui];
    if (u.resident) {
      full.assign(ul.padded, 0.0f);
      for (size_t t = 0; t < ul.tensors.size(); ++t) {
        fn(ui, t, 0, ul.tensors[t].numel, full.data() + ul.tensors[t].offset);
      }
      if (sixteen()) {
        FromFloat(options_.dtype, full.data(), u.work16.data(), ul.padded);
        std::copy_n(full.data() + OwnedBegin(ui), Owned(ui), Master(ui));
      } else {
        u.work32 = full;
      }
      continue;
    }
    // Stage 3: only this rank's slice of each tensor is ever computed or held.
    float* shard = Master(ui);
    std::fill_n(shard, ul.shard, 0.0f);
    for (size_t t = 0; t < ul.tensors.size(); ++t) {
      const auto [lo, hi] = OwnedPart(ui, t);
      const size_t offset = ul.tensors[t].offset;
      if (lo < hi) fn(ui, t, lo - offset, hi - offset, shard + (lo - OwnedBegin(ui)));
    }
    if (sixteen()) FromFloat(options_.dtype, shard, u.work16.data(), ul.shard);
  }
}

void ZeroEngine::SetTensor(size_t unit, size_t tensor, const float* values) {
  const TensorLayout& tl = layout_.units()[unit].tensors[tensor];
  Unit& u = units_[unit];
  // Full copies (resident working weights) take the whole tensor.
  if (u.resident) {
    if (sixteen()) {
      FromFloat(options_.dtype, values, u.work16.data() + tl.offset, tl.numel);
    } else {
      std::copy_n(values, tl.numel, u.work32.data() + tl.offset);
    }
  }
  if (u.resident && !sixteen()) return;  // The working copy is the master.
  // The owned part of the master (and of a stage-3 working shard).
  const auto [lo, hi] = OwnedPart(unit, tensor);
  if (lo >= hi) return;
  const size_t begin = OwnedBegin(unit);
  float* master = Master(unit);
  std::copy(values + (lo - tl.offset), values + (hi - tl.offset), master + (lo - begin));
  if (!u.resident && sixteen()) {
    FromFloat(options_.dtype, master + (lo - begin), u.work16.data() + (lo - begin), hi - lo);
  }
}

absl::Status ZeroEngine::GetTensor(size_t unit, size_t tensor, float* out) {
  if (absl::Status s = worker_->Drain(); !s.ok()) return s;
  const UnitLayout& ul = layout_.units()[unit];
  const TensorLayout& tl = ul.tensors[tensor];
  if (options_.stage == 0 || (units_[unit].resident && !sixteen())) {
    const float* src =
        sixteen() ? state_.master() + units_[unit].state_base : units_[unit].work32.data();
    std::copy_n(src + tl.offset, tl.numel, out);
    return absl::OkStatus();
  }
  std::vector<float> full(ul.padded, 0.0f);
  std::copy_n(Master(unit), ul.shard, full.data() + OwnedBegin(unit));
  if (absl::Status s = comm_->AllGather(full.data(), ul.shard); !s.ok()) return s;
  std::copy_n(full.data() + tl.offset, tl.numel, out);
  return absl::OkStatus();
}

absl::Status ZeroEngine::CheckOrderAcrossRanks() {
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
  if (absl::Status s = comm_->AllReduce(sums, 16, ReduceOp::kSum); !s.ok()) return s;
  const double n = comm_->world_size();
  for (int i = 0; i < 8; ++i) {
    if (n * sums[8 + i] != static_cast<double>(sums[i]) * sums[i]) {
      stats_.order_consistent = false;
    }
  }
  if (!stats_.order_consistent) {
    prefetch_enabled_ = false;
    std::fprintf(stderr,
                 "zerorun: rank %d: the ranks acquired their units in different orders in the "
                 "first step; prefetching is off (every rank must acquire in the same order)\n",
                 comm_->rank());
  }
  return absl::OkStatus();
}

float* ZeroEngine::OwnedGrads(size_t unit, std::vector<float>& tmp, bool* direct) {
  Unit& u = units_[unit];
  const size_t n = Owned(unit), begin = OwnedBegin(unit);
  *direct = true;
  if (state_.acc32() != nullptr) return state_.acc32() + u.state_base;
  if (!sixteen()) return u.grad32.data() + begin;
  *direct = false;
  tmp.resize(n);
  const uint16_t* src =
      state_.acc16() == nullptr ? u.grad16.data() + begin : state_.acc16() + u.state_base;
  ToFloat(options_.dtype, src, tmp.data(), n);
  return tmp.data();
}

void ZeroEngine::ZeroGrads() {
  for (Unit& u : units_) {
    std::fill(u.grad32.begin(), u.grad32.end(), 0.0f);
    std::fill(u.grad16.begin(), u.grad16.end(), 0);
  }
  state_.ZeroAccumulator();
}

absl::Status ZeroEngine::Sync() { return worker_->Drain(); }

absl::StatusOr<StepResult> ZeroEngine::Step(int64_t step, float lr, float value) {
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    if (units_[ui].grad_slot >= 0 || units_[ui].refs > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", ui, " (", layout_.units()[ui].name, ") ",
                       units_[ui].refs > 0 ? "is still acquired by a live guard"
                                           : "has gradients that were never marked ready",
                       " at Step()"));
    }
  }
  if (absl::Status s = worker_->Drain(); !s.ok()) return s;
  for (size_t ui = 0; ui < units_.size(); ++ui) FreeView(ui);
  if (!first_step_done_) {
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
    absl::Status s;
    if (!sixteen()) {
      s = options_.stage == 0 ? comm_->AllReduce(u.grad32.data(), ul.padded, ReduceOp::kAvg)
                              : comm_->ReduceScatter(u.grad32.data(), ul.shard, ReduceOp::kAvg);
    } else {
      // In the working dtype, as DeepSpeed: reduce-scatter, round the own shard, (stage 0) gather.
      tmp.resize(ul.shard);
      s = comm_->ReduceScatter16(u.grad16.data(), ul.shard, options_.dtype, ReduceOp::kAvg,
                                 tmp.data());
      const size_t mine = static_cast<size_t>(comm_->rank()) * ul.shard;
      if (s.ok()) FromFloat(options_.dtype, tmp.data(), u.grad16.data() + mine, ul.shard);
      if (s.ok() && options_.stage == 0) s = comm_->AllGather16(u.grad16.data(), ul.shard);
    }
    if (!s.ok()) return s;
  }
  // 2. One multiplier for micro-step averaging and unscaling, then the global norm.
  const float pre =
      1.0f / (static_cast<float>(options_.gradient_accumulation_steps) * state_.scaler().scale());
  double local = 0;
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    bool direct = false;
    float* g = OwnedGrads(ui, tmp, &direct);
    const size_t n = Owned(ui);
    if (pre != 1.0f) {
      for (size_t i = 0; i < n; ++i) g[i] *= pre;
    }
    for (size_t i = 0; i < n; ++i) local += static_cast<double>(g[i]) * g[i];
  }
  // One all-reduce for the squared norm (stage 0 holds it whole already) and the caller's value.
  float sums[2] = {options_.stage > 0 ? static_cast<float>(local) : 0.0f, value};
  if (absl::Status s = comm_->AllReduce(sums, 2, ReduceOp::kSum); !s.ok()) return s;
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
    if (absl::Status s = swap_->Begin(); !s.ok()) return s;
  }
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    Unit& u = units_[ui];
    bool direct = false;
    float* g = OwnedGrads(ui, tmp, &direct);
    const size_t n = Owned(ui), begin = OwnedBegin(ui);
    // 16-bit gradients are widened again rather than kept in fp32 since the norm pass: one
    // unit's scratch instead of a 4P/N buffer, for a cheap second conversion.
    if (!direct && pre != 1.0f) {
      for (size_t i = 0; i < n; ++i) g[i] *= pre;
    }
    if (options_.gradient_clipping > 0) {
      for (size_t i = 0; i < n; ++i) g[i] *= result.clip_coef;  // Also when coef is 1, as torch.
    }
    float* master = Master(ui);
    if (swap_ == nullptr) {
      AdamWStepReference(hyper, step, n, master, g, state_.exp_avg() + u.state_base,
                         state_.exp_avg_sq() + u.state_base);
    } else {
      // m and v come from NVMe chunk by chunk (AdamW is element-wise: the same results).
      const auto [first, count] = unit_chunks_[ui];
      size_t at = 0;
      for (size_t k = first; k < first + count; ++k) {
        absl::StatusOr<std::pair<float*, float*>> mv = swap_->Acquire(k);
        if (!mv.ok()) return mv.status();
        const size_t len = std::min(options_.sub_group_size, n - at);
        AdamWStepReference(hyper, step, len, master + at, g + at, mv->first, mv->second);
        swap_->Release(k);
        at += len;
      }
    }
    if (sixteen()) {
      FromFloat(options_.dtype, master, u.work16.data() + (u.resident ? begin : 0), n);
    }
    if (u.resident && options_.stage > 0) {
      // On the communication thread with overlap_comm: Acquire(unit) waits for this gather.
      uint16_t* w16 = u.work16.data();
      float* w32 = u.work32.data();
      const size_t shard = ul.shard;
      const bool half = sixteen();
      u.ready_ticket = worker_->Submit([this, w16, w32, shard, half] {
        return half ? comm_->AllGather16(w16, shard) : comm_->AllGather(w32, shard);
      });
    }
  }
  if (swap_ != nullptr) {
    if (absl::Status s = swap_->Finish(); !s.ok()) return s;  // m and v written back.
  }
  state_.set_last_step(step);
  ZeroGrads();
  if (absl::Status s = worker_->Wait(0); !s.ok()) return s;  // Inline gathers' errors.
  return result;
}

MemoryReport ZeroEngine::Memory() const {
  MemoryReport m;
  for (const Unit& u : units_) {
    m.params += u.work32.size() * sizeof(float) + u.work16.size() * sizeof(uint16_t);
    m.grads += u.grad32.size() * sizeof(float) + u.grad16.size() * sizeof(uint16_t);
  }
  m.master = state_.master_bytes();
  m.grads += state_.accumulator_bytes();
  m.optimizer = state_.optimizer_bytes();
  m.scratch = grad_slots_->bytes();
  m.live = param_slots_->bytes();
  // Placement: the offloaded share of the optimizer state, and stage 3's parameter shards.
  const double ratio =
      options_.optimizer_space == MemorySpace::kDevice ? 0 : options_.optimizer_ratio;
  // kNvme: Adam's m and v in the swap file (the masters stay: they are the weights in fp32).
  const size_t offloaded =
      options_.optimizer_space == MemorySpace::kNvme
          ? m.optimizer
          : static_cast<size_t>(ratio * static_cast<double>(m.master + m.optimizer));
  const size_t params_away = options_.param_space == MemorySpace::kDevice ? 0 : m.params;
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
