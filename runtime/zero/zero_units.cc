// UnitGuard and the engine's parameter front door: Acquire / Release through the ParamStore.
#include "zero/param_store.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

UnitGuard::UnitGuard(UnitGuard&& other) noexcept
    : engine_(other.engine_), unit_(other.unit_), base_(other.base_), working_(other.working_) {
  other.engine_ = nullptr;
}

UnitGuard::~UnitGuard() {
  if (engine_ != nullptr) engine_->Release(unit_);
}

float* UnitGuard::tensor(size_t index) const {
  if (base_ == nullptr) return nullptr;  // 16-bit weights, not widened.
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

int ZeroEngine::live_guards(size_t unit) const { return params_->refs(unit); }

void ZeroEngine::KeepForBackward(size_t unit, bool keep) { params_->KeepForBackward(unit, keep); }

absl::StatusOr<UnitGuard> ZeroEngine::Acquire(size_t unit, Pass pass) {
  absl::StatusOr<ParamStore::View> view = params_->Acquire(unit, pass);
  if (!view.ok()) return view.status();
  return UnitGuard(this, unit, view->base, view->working);
}

void ZeroEngine::Release(size_t unit) { params_->Release(unit); }

const std::vector<std::pair<size_t, Pass>>& ZeroEngine::acquire_order() const {
  return params_->order();
}

GatherStats ZeroEngine::gather_stats() const { return params_->stats(); }

std::vector<std::string> ZeroEngine::TakeNotices() { return params_->TakeNotices(); }

}  // namespace zerorun
