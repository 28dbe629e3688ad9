// TorchEngine: zerorun.torch's engine (see torch_engine.h) over ZeroEngine, absl::Status turned
// into Error with the message kept whole.
#include "torch_engine.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "zerorun/checkpoint.h"
#include "zerorun/engine_config.h"
#include "zerorun/init.h"
#include "zerorun/zero_engine.h"

namespace zerorun::pyext {
namespace {

void Check(const absl::Status& s) {
  if (s.ok()) return;
  const std::string what(s.message());
  if (s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kOutOfRange) {
    throw Error(ErrorKind::kValue, what);
  }
  if (s.code() == absl::StatusCode::kNotFound) throw Error(ErrorKind::kNotFound, what);
  throw Error(ErrorKind::kRuntime, what);
}

template <typename T>
T Take(absl::StatusOr<T> v) {
  Check(v.status());
  return *std::move(v);
}

Flat FlatOf(const BufferView& v) {
  const FlatType type = v.dtype == DType::kBf16   ? FlatType::kBf16
                        : v.dtype == DType::kFp16 ? FlatType::kFp16
                                                  : FlatType::kFp32;
  return {v.data, v.count, type};
}

}  // namespace

struct TorchEngine::State {
  RankContext ctx;
  ZeroOptions options;
  LrSchedule lr;
  int micro_batch = 1;
  std::vector<std::string> notes;
  // Before the guards: they are given back before the engine goes.
  std::unique_ptr<ZeroEngine> engine;
  std::vector<std::vector<UnitGuard>> guards;
  absl::Time last_step_at = absl::Now();

  ZeroEngine* E() const {
    if (engine == nullptr) throw Error(ErrorKind::kRuntime, "this zerorun.torch engine was closed");
    return engine.get();
  }
  // The tensor's layout; ValueError unless `count` is its number of elements.
  const TensorLayout& Tensor(size_t unit, size_t tensor, size_t count) const {
    const TensorLayout& t = E()->layout().units().at(unit).tensors.at(tensor);
    if (count != t.numel) {
      Check(absl::InvalidArgumentError(
          absl::StrCat("tensor ", t.name, " has ", t.numel, " elements, not ", count)));
    }
    return t;
  }
};

TorchEngine::TorchEngine(const std::string& config_path, const std::vector<UnitArg>& units,
                         const std::vector<float>& adam, bool config_path_wins)
    : s_(std::make_unique<State>()) {
  InitOptions init;
  init.config_path = config_path;
  init.config_path_wins = config_path_wins;
  s_->ctx = Take(InitFromEnv(init));
  EngineConfig config = Take(ReadEngineConfig(s_->ctx.config));
  ZeroOptions& o = s_->options;
  o = config.zero;
  o.widen = false;
  if (adam.size() == 4) {
    o.adam.beta1 = adam[0];
    o.adam.beta2 = adam[1];
    o.adam.eps = adam[2];
    o.adam.weight_decay = adam[3];
  } else if (!adam.empty()) {
    Check(absl::InvalidArgumentError("adam: {beta1, beta2, eps, weight_decay} or nothing"));
  }
  const char* job = std::getenv("ZERORUN_JOB_ID");
  o.swap_tag =
      absl::StrCat(job != nullptr ? job : absl::StrCat("pid", getpid()), "-rank", s_->ctx.rank);
  s_->lr = config.lr;
  s_->micro_batch = config.micro_batch;
  s_->notes = config.notes;
  std::vector<UnitSpec> specs;
  for (const auto& [name, tensors] : units) {
    UnitSpec u{name, {}};
    for (const auto& [tname, shape, decay] : tensors) u.tensors.push_back({tname, shape, decay});
    specs.push_back(std::move(u));
  }
  s_->engine = Take(ZeroEngine::Create(specs, o, s_->ctx.comm.get()));
  s_->guards.resize(specs.size());
}

TorchEngine::~TorchEngine() = default;

int TorchEngine::rank() const { return s_->ctx.rank; }
int TorchEngine::world_size() const { return s_->ctx.world_size; }
int TorchEngine::local_rank() const { return s_->ctx.local_rank; }
int TorchEngine::stage() const { return s_->options.stage; }
std::string TorchEngine::dtype() const { return DTypeName(s_->options.dtype); }
int TorchEngine::accumulation_steps() const { return s_->options.gradient_accumulation_steps; }
float TorchEngine::clipping() const { return s_->options.gradient_clipping; }
int TorchEngine::micro_batch() const { return s_->micro_batch; }
bool TorchEngine::overlap_comm() const { return s_->options.overlap_comm; }
std::string TorchEngine::config_json() const { return s_->ctx.config.dump(); }
const std::vector<std::string>& TorchEngine::notes() const { return s_->notes; }
float TorchEngine::lr_at(int64_t step) const { return s_->lr.At(step); }
float TorchEngine::loss_scale() const { return s_->E()->loss_scale(); }
int64_t TorchEngine::last_step() const { return s_->E()->last_step(); }

std::vector<std::pair<size_t, size_t>> TorchEngine::offsets(size_t unit) const {
  std::vector<std::pair<size_t, size_t>> out;
  for (const TensorLayout& t : s_->E()->layout().units().at(unit).tensors) {
    out.emplace_back(t.offset, t.numel);
  }
  return out;
}

void TorchEngine::set_tensor(size_t unit, size_t tensor, float* values, size_t count, int root) {
  s_->Tensor(unit, tensor, count);
  Check(s_->E()->Sync());
  if (root >= 0) Check(s_->ctx.comm->Broadcast(HostView(values, count), root).Wait());
  Check(s_->E()->SetTensor(unit, tensor, values));
}

void TorchEngine::set_adam(size_t unit, size_t tensor, const float* m, const float* v,
                           size_t count) {
  s_->Tensor(unit, tensor, count);
  Check(s_->E()->Sync());
  Check(s_->E()->SetTensorAdam(unit, tensor, m, v));
}

void TorchEngine::finish_restore(int64_t step) {
  Check(s_->E()->FinishRestore(step, s_->E()->scaler()));
}

void TorchEngine::get_tensor(size_t unit, size_t tensor, float* out) {
  Check(s_->E()->Sync());
  Check(s_->E()->GetTensor(unit, tensor, out));
}

Flat TorchEngine::acquire(size_t unit, bool backward) {
  UnitGuard g = Take(s_->E()->Acquire(unit, backward ? Pass::kBackward : Pass::kForward));
  const Flat out = FlatOf(g.weights());
  s_->guards.at(unit).push_back(std::move(g));
  return out;
}

void TorchEngine::release(size_t unit) {
  std::vector<UnitGuard>& held = s_->guards.at(unit);
  if (held.empty()) Check(absl::FailedPreconditionError(absl::StrCat("unit ", unit, " not held")));
  held.pop_back();
}

void TorchEngine::keep_for_backward(size_t unit, bool keep) {
  s_->E()->KeepForBackward(unit, keep);
}

Flat TorchEngine::grads(size_t unit) { return FlatOf(Take(s_->E()->WorkingGrads(unit))); }

void TorchEngine::grads_ready(size_t unit) { Check(s_->E()->GradsReady(unit)); }

StepOut TorchEngine::step(int64_t step, float lr, float value, double tokens) {
  ZeroEngine* e = s_->E();
  const StepResult r = Take(e->Step(step, lr, value));
  const absl::Time now = absl::Now();
  const double seconds = absl::ToDoubleSeconds(now - s_->last_step_at);
  s_->last_step_at = now;
  if (s_->ctx.coordinator != nullptr) {
    (void)s_->ctx.coordinator->ReportStep(step, r.mean_value, seconds > 0 ? tokens / seconds : 0,
                                          static_cast<int64_t>(e->Memory().total()),
                                          &e->step_times());
  }
  return {r.grad_norm, r.clip_coef, r.skipped, r.loss_scale, r.mean_value};
}

void TorchEngine::sync() { Check(s_->E()->Sync()); }

MemoryOut TorchEngine::memory() const {
  const MemoryReport m = s_->E()->Memory();
  return {m.params, m.master, m.grads, m.optimizer, m.scratch, m.live, m.allocated, m.peak, m.nvme};
}

std::vector<std::string> TorchEngine::take_notices() { return s_->E()->TakeNotices(); }

void TorchEngine::close() {
  s_->guards.clear();
  s_->engine.reset();
}

void TorchEngine::save_checkpoint(const std::string& dir, const std::string& tag,
                                  const std::string& client_state, const std::string& frozen) {
  SaveOptions options;
  options.frozen = frozen;
  Check(s_->E()->Sync());
  Check(SaveCheckpoint(*s_->engine, *s_->ctx.comm, dir, tag, client_state, s_->ctx.config.dump(),
                       options));
}

std::string TorchEngine::load_checkpoint(const std::string& dir, const std::string& tag) {
  Check(s_->E()->Sync());
  return Take(LoadCheckpoint(*s_->engine, *s_->ctx.comm, dir, tag));
}

}  // namespace zerorun::pyext
