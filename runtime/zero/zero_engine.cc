// ZeroEngine: stage 0-2 gradient reduction, global-norm clipping and sharded AdamW.
#include "zerorun/zero_engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace zerorun {

absl::StatusOr<std::unique_ptr<ZeroEngine>> ZeroEngine::Create(const std::vector<UnitSpec>& units,
                                                               const ZeroOptions& options,
                                                               Communicator* comm) {
  if (options.stage < 0 || options.stage > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("ZeRO stage ", options.stage, " is not supported by this engine (0, 1 or 2)"));
  }
  if (options.gradient_accumulation_steps < 1) {
    return absl::InvalidArgumentError("gradient_accumulation_steps must be >= 1");
  }
  if (options.stage == 2 && options.grad_slots < 1) {
    return absl::InvalidArgumentError("stage 2 needs at least one gradient slot");
  }
  absl::StatusOr<Layout> layout = Layout::Build(units, comm->world_size(), options.align);
  if (!layout.ok()) return layout.status();
  return std::unique_ptr<ZeroEngine>(new ZeroEngine(*std::move(layout), options, comm));
}

ZeroEngine::ZeroEngine(Layout layout, const ZeroOptions& options, Communicator* comm)
    : layout_(std::move(layout)), options_(options), comm_(comm) {
  size_t max_unit = 0;
  for (const UnitLayout& u : layout_.units()) {
    params_.emplace_back(u.padded, 0.0f);
    if (options_.stage < 2) grads_.emplace_back(u.padded, 0.0f);
    max_unit = std::max(max_unit, u.padded);
  }
  const size_t state = options_.stage == 0 ? layout_.padded_params() : layout_.state_size();
  exp_avg_.assign(state, 0.0f);
  exp_avg_sq_.assign(state, 0.0f);
  if (options_.stage == 2) {
    grad_shard_.assign(layout_.state_size(), 0.0f);
    slots_.assign(options_.grad_slots, std::vector<float>(max_unit, 0.0f));
  }
  slot_of_unit_.assign(layout_.units().size(), -1);
  live_guards_.assign(layout_.units().size(), 0);
}

UnitGuard::UnitGuard(UnitGuard&& other) noexcept : engine_(other.engine_), unit_(other.unit_) {
  other.engine_ = nullptr;
}

UnitGuard::~UnitGuard() {
  if (engine_ != nullptr) engine_->Release(unit_);
}

float* UnitGuard::tensor(size_t index) const { return engine_->Tensor(unit_, index); }

std::vector<float*> UnitGuard::tensors() const {
  std::vector<float*> out;
  const size_t n = engine_->layout().units()[unit_].tensors.size();
  for (size_t i = 0; i < n; ++i) out.push_back(tensor(i));
  return out;
}

absl::StatusOr<UnitGuard> ZeroEngine::Acquire(size_t unit, Pass pass) {
  if (unit >= layout_.units().size()) {
    return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  }
  if (!first_step_done_) acquire_order_.emplace_back(unit, pass);
  ++live_guards_[unit];
  return UnitGuard(this, unit);
}

float* ZeroEngine::Params(size_t unit) { return params_[unit].data(); }

float* ZeroEngine::Tensor(size_t unit, size_t tensor) {
  return params_[unit].data() + layout_.units()[unit].tensors[tensor].offset;
}

absl::StatusOr<float*> ZeroEngine::Grads(size_t unit) {
  if (unit >= layout_.units().size()) {
    return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  }
  if (options_.stage < 2) return grads_[unit].data();
  if (slot_of_unit_[unit] >= 0) return slots_[slot_of_unit_[unit]].data();
  for (size_t s = 0; s < slots_.size(); ++s) {
    if (std::find(slot_of_unit_.begin(), slot_of_unit_.end(), static_cast<int>(s)) ==
        slot_of_unit_.end()) {
      slot_of_unit_[unit] = static_cast<int>(s);
      std::fill(slots_[s].begin(), slots_[s].end(), 0.0f);
      return slots_[s].data();
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("all ", slots_.size(),
                   " gradient slots are in use: call GradsReady() for a "
                   "unit before taking the gradients of another"));
}

absl::Status ZeroEngine::GradsReady(size_t unit) {
  if (unit >= layout_.units().size()) {
    return absl::InvalidArgumentError(absl::StrCat("no unit ", unit));
  }
  if (options_.stage < 2) return absl::OkStatus();
  const int slot = slot_of_unit_[unit];
  if (slot < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("GradsReady(", unit, ") without Grads(", unit, ") in this micro-step"));
  }
  const UnitLayout& u = layout_.units()[unit];
  float* full = slots_[slot].data();
  if (absl::Status s = comm_->ReduceScatter(full, u.shard, ReduceOp::kAvg); !s.ok()) return s;
  const float* mine = full + static_cast<size_t>(comm_->rank()) * u.shard;
  float* acc = grad_shard_.data() + u.state_offset;
  for (size_t i = 0; i < u.shard; ++i) acc[i] += mine[i];
  slot_of_unit_[unit] = -1;
  return absl::OkStatus();
}

absl::StatusOr<float> ZeroEngine::GlobalNorm() {
  // Sum of squares over what this rank owns (padding is zero), then one scalar all-reduce;
  // stage 0 holds the whole averaged gradient and needs no communication.
  double sum = 0;
  if (options_.stage == 0) {
    for (const auto& g : grads_) {
      for (float x : g) sum += static_cast<double>(x) * x;
    }
    return static_cast<float>(std::sqrt(sum));
  }
  const size_t r = static_cast<size_t>(comm_->rank());
  for (size_t ui = 0; ui < layout_.units().size(); ++ui) {
    const UnitLayout& u = layout_.units()[ui];
    const float* g =
        options_.stage == 1 ? grads_[ui].data() + r * u.shard : grad_shard_.data() + u.state_offset;
    for (size_t i = 0; i < u.shard; ++i) sum += static_cast<double>(g[i]) * g[i];
  }
  float total = static_cast<float>(sum);
  if (absl::Status s = comm_->AllReduce(&total, 1, ReduceOp::kSum); !s.ok()) return s;
  return std::sqrt(total);
}

absl::StatusOr<StepResult> ZeroEngine::Step(int64_t step, float lr) {
  for (size_t ui = 0; ui < slot_of_unit_.size(); ++ui) {
    if (slot_of_unit_[ui] >= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("unit ", ui, " (", layout_.units()[ui].name,
                       ") has gradients that were never marked ready"));
    }
  }
  first_step_done_ = true;
  const size_t r = static_cast<size_t>(comm_->rank());
  // 1. Average over ranks (stages 0/1 here; stage 2 did it per unit).
  for (size_t ui = 0; ui < layout_.units().size() && options_.stage < 2; ++ui) {
    const UnitLayout& u = layout_.units()[ui];
    absl::Status s = options_.stage == 0
                         ? comm_->AllReduce(grads_[ui].data(), u.padded, ReduceOp::kAvg)
                         : comm_->ReduceScatter(grads_[ui].data(), u.shard, ReduceOp::kAvg);
    if (!s.ok()) return s;
  }
  // 2. Average over micro-steps, then the norm and the clip coefficient.
  const float inv_ga = 1.0f / static_cast<float>(options_.gradient_accumulation_steps);
  auto owned_grads = [&](size_t ui) -> std::pair<float*, size_t> {
    const UnitLayout& u = layout_.units()[ui];
    if (options_.stage == 0) return {grads_[ui].data(), u.padded};
    if (options_.stage == 1) return {grads_[ui].data() + r * u.shard, u.shard};
    return {grad_shard_.data() + u.state_offset, u.shard};
  };
  if (options_.gradient_accumulation_steps > 1) {
    for (size_t ui = 0; ui < layout_.units().size(); ++ui) {
      auto [g, n] = owned_grads(ui);
      for (size_t i = 0; i < n; ++i) g[i] *= inv_ga;
    }
  }
  absl::StatusOr<float> norm = GlobalNorm();
  if (!norm.ok()) return norm.status();
  StepResult result;
  result.grad_norm = *norm;
  if (options_.gradient_clipping > 0) {
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped to 1.
    result.clip_coef = std::min(1.0f, options_.gradient_clipping / (*norm + 1e-6f));
  }
  // 3. AdamW on what this rank owns, then share the parameters.
  AdamWHyper hyper = options_.adam;
  hyper.lr = lr;
  size_t state = 0;
  for (size_t ui = 0; ui < layout_.units().size(); ++ui) {
    const UnitLayout& u = layout_.units()[ui];
    auto [g, n] = owned_grads(ui);
    if (options_.gradient_clipping > 0) {
      for (size_t i = 0; i < n; ++i) g[i] *= result.clip_coef;  // Also when coef is 1, as torch.
    }
    float* p = params_[ui].data() + (options_.stage == 0 ? 0 : r * u.shard);
    AdamWStepReference(hyper, step, n, p, g, exp_avg_.data() + state, exp_avg_sq_.data() + state);
    state += n;
    std::fill(g, g + n, 0.0f);
    if (options_.stage == 1) std::fill(grads_[ui].begin(), grads_[ui].end(), 0.0f);
    if (options_.stage > 0) {
      if (absl::Status s = comm_->AllGather(params_[ui].data(), u.shard); !s.ok()) return s;
    }
  }
  return result;
}

MemoryReport ZeroEngine::Memory() const {
  MemoryReport m;
  m.params = layout_.padded_params() * sizeof(float);
  if (options_.stage < 2) {
    m.grads = layout_.padded_params() * sizeof(float);
  } else {
    m.grads = grad_shard_.size() * sizeof(float);
    for (const auto& slot : slots_) m.scratch += slot.size() * sizeof(float);
  }
  m.optimizer = (exp_avg_.size() + exp_avg_sq_.size()) * sizeof(float);
  return m;
}

}  // namespace zerorun
