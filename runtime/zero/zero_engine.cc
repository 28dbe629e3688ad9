// ZeroEngine set-up, parameter values, the optimizer step (reduce, unscale, norm, overflow skip,
// clip, sharded AdamW on fp32 masters, write-back and gather) and the memory report.
#include "zerorun/zero_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "offload/nvme_state_store.h"
#include "offload/swap_dir.h"
#include "zero/comm_queue.h"
#include "zero/grad_store.h"
#include "zero/param_store.h"
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
  if (absl::Status s = engine->CreateStores(); !s.ok()) return s;
  return engine;
}

absl::Status ZeroEngine::CreateStores() {
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
  absl::StatusOr<std::unique_ptr<GradStore>> grads = GradStore::Create(
      layout_, options_.stage, options_.dtype, options_.grad_slots, allocator_.get());
  if (!grads.ok()) return grads.status();
  grads_ = *std::move(grads);
  // The optimizer visits units in order, each in chunks of at most sub_group_size elements.
  StateLayout state;
  state.master_bytes = sixteen() ? sizeof(float) : 0;
  state.grad_bytes = options_.stage < 2                       ? 0
                     : sixteen() && !options_.grad_accum_fp32 ? sizeof(uint16_t)
                                                              : sizeof(float);
  state.grad_dtype = options_.dtype;
  for (size_t ui = 0; ui < units(); ++ui) {
    const size_t first = state.chunks.size();
    for (size_t done = 0; done < Owned(ui); done += options_.sub_group_size) {
      state.chunks.push_back({ui, done, std::min(options_.sub_group_size, Owned(ui) - done)});
    }
    unit_chunks_.emplace_back(first, state.chunks.size() - first);
  }
  optimizer_ = CreateCpuAdamW(options_.adam);
  if (options_.optimizer_space == MemorySpace::kNvme) {
    absl::StatusOr<std::string> at = dir(options_.nvme_path, "offload_optimizer.nvme_path");
    if (!at.ok()) return at.status();
    absl::StatusOr<std::unique_ptr<NvmeStateStore>> swap =
        NvmeStateStore::Create(*at, std::move(state), aio, options_.optimizer_buffer_count);
    if (!swap.ok()) return swap.status();
    nvme_state_ = swap->get();
    state_ = *std::move(swap);
  } else {
    const bool pinned = options_.optimizer_space == MemorySpace::kHost && options_.pin_memory;
    if (pinned) state_allocator_ = CreateHostAllocator(MemoryKind::kPinnedHost);
    absl::StatusOr<std::unique_ptr<StateStore>> store = CreateMemoryStateStore(
        std::move(state), options_.optimizer_space, pinned ? *state_allocator_ : *allocator_);
    if (!store.ok()) return store.status();
    state_ = *std::move(store);
  }
  std::string param_dir;
  if (options_.param_space == MemorySpace::kNvme) {
    absl::StatusOr<std::string> at = dir(options_.param_nvme_path, "offload_param.nvme_path");
    if (!at.ok()) return at.status();
    param_dir = *at;
  }
  absl::StatusOr<std::unique_ptr<ParamStore>> params =
      ParamStore::Create(layout_, options_, comm_, comm_queue_.get(), &phase_clock_,
                         allocator_.get(), kernels_.get(), param_dir);
  if (!params.ok()) return params.status();
  params_ = *std::move(params);
  // Scratch: the largest swapped shard (the step's), a chunk of the swapped accumulator.
  size_t swapped = 0;
  for (size_t i = 0; i < units(); ++i) {
    if (params_->swapped(i)) swapped = std::max(swapped, Owned(i));
  }
  auto scratch = [&](Buffer& b, size_t count, DType dtype) -> absl::Status {
    absl::StatusOr<Buffer> made = Buffer::Allocate(*allocator_, count, dtype);
    if (!made.ok()) return made.status();
    b = *std::move(made);
    return absl::OkStatus();
  };
  if (absl::Status s = scratch(sixteen() ? step16_ : step32_, swapped, options_.dtype); !s.ok()) {
    return s;
  }
  if (!grads_on_nvme()) return absl::OkStatus();
  grad_squares_.assign(state_->layout().chunks.size(), 0.0);
  return scratch(grad_io_, std::min(options_.sub_group_size, layout_.max_padded()),
                 grad_bytes() == sizeof(float) ? DType::kFp32 : options_.dtype);
}

ZeroEngine::ZeroEngine(Layout layout, const ZeroOptions& options, Communicator* comm)
    : layout_(std::move(layout)), options_(options), comm_(comm) {
  allocator_ = CreateHostAllocator();
  kernels_ = CreateCpuKernels();
  comm_queue_ =
      std::make_unique<CommQueue>(options_.overlap_comm && comm_->world_size() > 1, &phase_clock_);
  if (options_.dtype == DType::kFp16) scaler_ = LossScaler(options_.loss_scale);
}

ZeroEngine::~ZeroEngine() { (void)comm_queue_->Sync(); }

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

void* ZeroEngine::StateData(size_t unit, StateArray a) {
  return state_->Data(unit_chunks_[unit].first, a);
}

absl::StatusOr<StepResult> ZeroEngine::Step(int64_t step, float lr, float value) {
  const PhaseClock::Scope optimizer(&phase_clock_, Phase::kOptimizer);
  absl::StatusOr<StepResult> result = StepPhases(step, lr, value);
  step_times_ = phase_clock_.Lap();
  return result;
}

// Step()'s body, charged to the optimizer phase; collectives and swaps inside open their own.
absl::StatusOr<StepResult> ZeroEngine::StepPhases(int64_t step, float lr, float value) {
  for (size_t ui = 0; ui < units(); ++ui) {
    if (grads_->holds(ui) || params_->refs(ui) > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", ui, " (", layout_.units()[ui].name, ") ",
                       params_->refs(ui) > 0 ? "is still acquired by a live guard"
                                             : "has gradients that were never marked ready",
                       " at Step()"));
    }
  }
  if (absl::Status s = Sync(); !s.ok()) return s;
  params_->FreeViews();
  if (absl::Status s = params_->EndStep(); !s.ok()) return s;
  // 1. Stages 0/1: average the full gradients over ranks (stages 2/3 did it per unit).
  std::vector<float> tmp;
  for (size_t ui = 0; ui < units() && options_.stage < 2; ++ui) {
    const UnitLayout& ul = layout_.units()[ui];
    const FlightUnit flight(ul.name);
    const PhaseClock::Scope waiting(&phase_clock_, Phase::kCommWait);
    const BufferView full = grads_->full(ui);
    absl::Status s;
    if (!sixteen()) {
      s = options_.stage == 0 ? comm_->AllReduce(full, ReduceOp::kAvg).Wait()
                              : ReduceScatterInPlace(*comm_, full, ReduceOp::kAvg);
    } else {
      // In the working dtype, as DeepSpeed: reduce-scatter, round the own shard, (stage 0) gather.
      tmp.resize(ul.shard);
      s = comm_->ReduceScatter(full, HostView(tmp.data(), ul.shard), ReduceOp::kAvg).Wait();
      const size_t mine = static_cast<size_t>(comm_->rank()) * ul.shard;
      if (s.ok()) s = kernels_->Convert(HostView(tmp.data(), ul.shard), full.Slice(mine, ul.shard));
      if (s.ok() && options_.stage == 0) s = GatherInPlace(*comm_, full);
    }
    if (!s.ok()) return s;
  }
  // 2. One multiplier for micro-step averaging and unscaling, then the global norm.
  // The accumulator on NVMe had its squares taken as it was written; elsewhere the gradients are
  // scaled in place here (the step reads them so) and summed chunk by chunk the same way.
  const float pre = GradPre();
  double local = 0;
  for (size_t ui = 0; ui < units(); ++ui) {
    float* g = nullptr;
    if (!grads_on_nvme()) {
      bool direct = false;
      absl::StatusOr<float*> grads = OwnedGrads(ui, tmp, &direct);
      if (!grads.ok()) return grads.status();
      g = *grads;
      if (pre != 1.0f) {
        if (absl::Status s = kernels_->Scale(HostView(g, Owned(ui)), pre); !s.ok()) return s;
      }
    }
    absl::Status s = ForEachChunk(ui, [&](size_t k, size_t at, size_t len) -> absl::Status {
      if (g == nullptr) {
        local += grad_squares_[k];
        return absl::OkStatus();
      }
      absl::StatusOr<double> squares = kernels_->SumSquares(HostView(g + at, len), 1.0f);
      if (!squares.ok()) return squares.status();
      local += *squares;
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
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
    scaler_.Update(true);
    result.loss_scale = scaler_.scale();
    ZeroGrads();
    return result;
  }
  scaler_.Update(false);
  result.loss_scale = scaler_.scale();
  if (options_.gradient_clipping > 0) {
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
    result.clip_coef = std::min(1.0f, options_.gradient_clipping / (result.grad_norm + 1e-6f));
  }
  // 3. AdamW on the fp32 masters this rank owns, write-back, then share the working weights.
  if (absl::Status s = StepOptimizer(step, lr, pre, result.clip_coef, tmp); !s.ok()) return s;
  last_step_ = step;
  if (absl::Status s = comm_queue_->status(); !s.ok()) return s;  // Inline gathers' errors.
  return result;
}

absl::Status ZeroEngine::StepOptimizer(int64_t step, float lr, float pre, float clip_coef,
                                       std::vector<float>& tmp) {
  // 16-bit gradients are widened again rather than kept in fp32 since the norm pass: one unit's
  // scratch instead of a 4P/N buffer, for a cheap second conversion. Gradients on NVMe arrive
  // with their chunk and are widened and scaled there the same way.
  auto scale = [&](float* g, size_t count, bool direct) -> absl::Status {
    if (!direct && pre != 1.0f) {
      if (absl::Status s = kernels_->Scale(HostView(g, count), pre); !s.ok()) return s;
    }
    if (options_.gradient_clipping > 0) {
      return kernels_->Scale(HostView(g, count), clip_coef);  // Also at 1, as torch.
    }
    return absl::OkStatus();
  };
  // The store's transfers are I/O where it is on NVMe; in memory its pass costs nothing to charge.
  const Phase transfer = nvme_state_ != nullptr ? Phase::kIo : Phase::kOptimizer;
  if (absl::Status s = phase_clock_.Charge(transfer, [&] { return state_->Begin(); }); !s.ok()) {
    return s;
  }
  std::vector<float> widened;  // A chunk of gradients from NVMe.
  for (size_t ui = 0; ui < units(); ++ui) {
    const size_t n = Owned(ui);
    float* g = nullptr;
    if (!grads_on_nvme()) {
      bool direct = false;
      absl::StatusOr<float*> grads = OwnedGrads(ui, tmp, &direct);
      if (!grads.ok()) return grads.status();
      g = *grads;
      if (absl::Status s = scale(g, n, direct); !s.ok()) return s;
    }
    // The masters: in memory, from the state store chunk by chunk (16-bit), or read here from the
    // parameter swap (fp32 stage 3 on NVMe: the shard is the master). New 16-bit weights go to
    // the working copy, or to a scratch shard bound for the parameter swap.
    float* master = MasterData(ui);
    if (master == nullptr && !sixteen()) {
      master = static_cast<float*>(step32_.view().data);
      if (absl::Status s =
              phase_clock_.Charge(Phase::kIo, [&] { return params_->swap()->Read(ui, master); });
          !s.ok()) {
        return s;
      }
    }
    uint16_t* w16 = !sixteen()             ? nullptr
                    : params_->swapped(ui) ? static_cast<uint16_t*>(step16_.view().data)
                                           : OwnedWorking16(ui);
    absl::Status s = ForEachChunk(ui, [&](size_t k, size_t at, size_t len) {
      absl::StatusOr<StateStore::Chunk> chunk =
          phase_clock_.Charge(transfer, [&] { return state_->Acquire(k); });
      if (!chunk.ok()) return chunk.status();
      float* mk = chunk->master != nullptr ? chunk->master : master + at;
      const float* gk = g == nullptr ? nullptr : g + at;
      if (grads_on_nvme()) {
        widened.resize(len);
        absl::Status s =
            kernels_->Convert(GradView(chunk->grad, len), HostView(widened.data(), len));
        if (s.ok()) s = scale(widened.data(), len, /*direct=*/false);
        if (!s.ok()) return s;
        gk = widened.data();
      }
      StepOwned(ui, step, lr, at, len, mk, gk, chunk->m, chunk->v);
      if (w16 != nullptr) {
        const BufferView out = HostView(w16 + at, len, options_.dtype);
        if (absl::Status s = kernels_->Convert(HostView(mk, len), out); !s.ok()) return s;
      }
      phase_clock_.Charge(transfer, [&] { state_->Release(k); });
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    if (params_->swapped(ui)) {
      const void* shard = sixteen() ? static_cast<const void*>(w16) : master;
      if (absl::Status s =
              phase_clock_.Charge(Phase::kIo, [&] { return params_->swap()->Write(ui, shard); });
          !s.ok()) {
        return s;
      }
    }
    if (params_->resident(ui) && options_.stage > 0) params_->Publish(ui);
  }
  // The gradients are consumed (zeroed before the write-back ends: a store need not write back
  // accumulators it held), then masters, m and v written back.
  ZeroGrads();
  return phase_clock_.Charge(transfer, [&] { return state_->Finish(); });
}

MemoryReport ZeroEngine::Memory() const {
  MemoryReport m;
  const size_t params_nvme = params_->swapped_bytes();  // Shards in the parameter swap.
  m.params = params_->working_bytes() + params_nvme;
  const StateLayout& state = state_->layout();
  m.master = state.bytes(StateArray::kMaster);
  m.grads += state.bytes(StateArray::kGrad);
  m.optimizer = state.bytes(StateArray::kM) + state.bytes(StateArray::kV);
  m.grads += grads_->full_bytes();
  m.scratch = grads_->slot_bytes() + step32_.view().bytes() + step16_.view().bytes() +
              grad_io_.view().bytes();
  m.live = params_->view_bytes();
  // Placement: the offloaded share of the optimizer state (kNvme: all of it, the masters
  // included where they are not the fp32 weights themselves, and the gradient accumulator), and
  // stage 3's parameter shards.
  const double ratio =
      options_.optimizer_space == MemorySpace::kDevice ? 0 : options_.optimizer_ratio;
  const size_t offloaded =
      options_.optimizer_space == MemorySpace::kNvme
          ? m.optimizer + m.master + (grads_on_nvme() ? state.bytes(StateArray::kGrad) : 0)
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
  for (const Allocator* a : {allocator_.get(), state_allocator_.get()}) {
    if (a == nullptr) continue;
    m.allocated += a->in_use();
    m.peak += a->high_water();
  }
  return m;
}

bool ZeroEngine::state_on_nvme() const {
  return nvme_state_ != nullptr || params_->swap() != nullptr;
}

uint16_t* ZeroEngine::OwnedWorking16(size_t unit) const {
  return static_cast<uint16_t*>(params_->working(unit).data) +
         (params_->resident(unit) ? OwnedBegin(unit) : 0);
}

}  // namespace zerorun
