// zerorun._zerorun: libzerorun's ZeroEngine for torch models (zerorun.torch), over nanobind.
// Weights and gradient slots go to Python as DLPack views of the engine's own buffers (torch
// tensors made by torch.utils.dlpack, zero-copy); nothing here links libtorch, so any torch 2.x
// works. Errors are absl::Status turned into ValueError (InvalidArgument, OutOfRange),
// FileNotFoundError (NotFound) or RuntimeError, the message kept whole.
//
// Threads: one Python thread drives a Bridge (the one that made it), as the engine's contract
// asks; calls that may wait on a collective release the GIL. A view returned here holds a
// reference to the Bridge and lives as the engine says: weights until the unit is released
// (stage 3) or for the engine's life (stages 0-2), a gradient slot until grads_ready.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "zerorun/checkpoint.h"
#include "zerorun/engine_config.h"
#include "zerorun/init.h"
#include "zerorun/zero_engine.h"

namespace nb = nanobind;

namespace zerorun {
namespace {

// Raised as FileNotFoundError (a translator, so that it may be thrown without the GIL).
struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws for an error status; callable with the GIL released (nanobind translates on return).
void Check(const absl::Status& s) {
  if (s.ok()) return;
  const std::string what(s.message());
  if (s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kOutOfRange) {
    throw nb::value_error(what.c_str());
  }
  if (s.code() == absl::StatusCode::kNotFound) throw NotFound(what);
  throw std::runtime_error(what);
}

template <typename T>
T Take(absl::StatusOr<T> v) {
  Check(v.status());
  return *std::move(v);
}

nb::dlpack::dtype DlType(DType d) {
  switch (d) {
    case DType::kFp32:
      return nb::dtype<float>();
    case DType::kBf16:
      return {static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat), 16, 1};
    case DType::kFp16:
      return {static_cast<uint8_t>(nb::dlpack::dtype_code::Float), 16, 1};
  }
  return nb::dtype<float>();
}

using Torch = nb::ndarray<nb::pytorch, nb::device::cpu>;
using FloatIn = nb::ndarray<float, nb::device::cpu, nb::c_contig>;

// (unit name, [(tensor name, shape, weight decay or -1 for the optimizer's)]) as Python gives
// them.
using UnitArg =
    std::pair<std::string, std::vector<std::tuple<std::string, std::vector<int64_t>, float>>>;

class Bridge {
 public:
  // Joins the job (InitFromEnv: zerorun's rendezvous, or a single process), reads the effective
  // config from `config_path` (ZERORUN_CONFIG under zerorun wins, as for every rank program,
  // unless config_path_wins: a config the program handed initialize itself),
  // and builds the engine over `units` with widening off: torch binds the working dtype.
  // `adam` ({beta1, beta2, eps, weight_decay}, or empty for the config's) comes from a torch
  // optimizer's hyper-parameters.
  Bridge(const std::string& config_path, const std::vector<UnitArg>& units,
         const std::vector<float>& adam, bool config_path_wins) {
    InitOptions init;
    init.config_path = config_path;
    init.config_path_wins = config_path_wins;
    ctx_ = Take(InitFromEnv(init));
    EngineConfig config = Take(ReadEngineConfig(ctx_.config));
    options_ = config.zero;
    options_.widen = false;
    if (adam.size() == 4) {
      options_.adam.beta1 = adam[0];
      options_.adam.beta2 = adam[1];
      options_.adam.eps = adam[2];
      options_.adam.weight_decay = adam[3];
    } else if (!adam.empty()) {
      Check(absl::InvalidArgumentError("adam: {beta1, beta2, eps, weight_decay} or nothing"));
    }
    const char* job = std::getenv("ZERORUN_JOB_ID");
    options_.swap_tag =
        absl::StrCat(job != nullptr ? job : absl::StrCat("pid", getpid()), "-rank", ctx_.rank);
    lr_ = config.lr;
    micro_batch_ = config.micro_batch;
    notes_ = config.notes;
    std::vector<UnitSpec> specs;
    for (const auto& [name, tensors] : units) {
      UnitSpec u{name, {}};
      for (const auto& [tname, shape, decay] : tensors) u.tensors.push_back({tname, shape, decay});
      specs.push_back(std::move(u));
    }
    engine_ = Take(ZeroEngine::Create(specs, options_, ctx_.comm.get()));
    guards_.resize(specs.size());
  }

  int rank() const { return ctx_.rank; }
  int world_size() const { return ctx_.world_size; }
  int local_rank() const { return ctx_.local_rank; }
  int stage() const { return options_.stage; }
  std::string dtype() const { return DTypeName(options_.dtype); }
  int accumulation_steps() const { return options_.gradient_accumulation_steps; }
  float clipping() const { return options_.gradient_clipping; }
  int micro_batch() const { return micro_batch_; }
  bool overlap_comm() const { return options_.overlap_comm; }
  std::string config_json() const { return ctx_.config.dump(); }
  const std::vector<std::string>& notes() const { return notes_; }
  float lr_at(int64_t step) const { return lr_.At(step); }
  float loss_scale() const { return E()->loss_scale(); }
  int64_t last_step() const { return E()->last_step(); }

  // [(offset, numel)] of the unit's tensors in its flat buffer (and gradient slot).
  std::vector<std::pair<size_t, size_t>> offsets(size_t unit) const {
    std::vector<std::pair<size_t, size_t>> out;
    for (const TensorLayout& t : E()->layout().units().at(unit).tensors) {
      out.emplace_back(t.offset, t.numel);
    }
    return out;
  }

  // Broadcasts a float32 tensor from `root` in place (a collective: rank 0's initial weights, a
  // GatheredParameters modifier's values), then SetTensor (masters and working weights). Root
  // -1: no broadcast, every rank passes the same values (a checkpoint every rank read).
  void set_tensor(size_t unit, size_t tensor, FloatIn values, int root) {
    nb::gil_scoped_release unlocked;
    const TensorLayout& t = E()->layout().units().at(unit).tensors.at(tensor);
    if (values.size() != t.numel) {
      Check(absl::InvalidArgumentError(
          absl::StrCat("tensor ", t.name, " has ", t.numel, " elements, not ", values.size())));
    }
    Check(E()->Sync());
    if (root >= 0) Check(ctx_.comm->Broadcast(HostView(values.data(), values.size()), root).Wait());
    Check(E()->SetTensor(unit, tensor, values.data()));
  }

  // Adam's m and v of a tensor from their full float32 values (local: every rank passes the
  // same); then finish_restore.
  void set_adam(size_t unit, size_t tensor, FloatIn m, FloatIn v) {
    nb::gil_scoped_release unlocked;
    const TensorLayout& t = E()->layout().units().at(unit).tensors.at(tensor);
    if (m.size() != t.numel || v.size() != t.numel) {
      Check(absl::InvalidArgumentError(absl::StrCat("tensor ", t.name, " has ", t.numel,
                                                    " elements, not ", m.size(), "/", v.size())));
    }
    Check(E()->Sync());
    Check(E()->SetTensorAdam(unit, tensor, m.data(), v.data()));
  }

  // Collective: ends an import of masters (set_tensor) and Adam's state (set_adam) at optimizer
  // step `step`: the working weights are rebuilt from the masters and shared.
  void finish_restore(int64_t step) {
    nb::gil_scoped_release unlocked;
    Check(E()->FinishRestore(step, E()->scaler()));
  }

  // The full fp32 values of a tensor (a collective at stages 1-3 and with 16-bit weights).
  void get_tensor(size_t unit, size_t tensor, FloatIn out) {
    nb::gil_scoped_release unlocked;
    Check(E()->Sync());
    Check(E()->GetTensor(unit, tensor, out.data()));
  }

  // Acquires `unit` for a pass (stage 3: gathers it) and returns its flat working weights.
  Torch acquire(size_t unit, bool backward) {
    BufferView w;
    {
      nb::gil_scoped_release unlocked;
      UnitGuard g = Take(E()->Acquire(unit, backward ? Pass::kBackward : Pass::kForward));
      w = g.weights();
      guards_.at(unit).push_back(std::move(g));
    }
    return View(w);
  }

  void release(size_t unit) {
    std::vector<UnitGuard>& held = guards_.at(unit);
    if (held.empty())
      Check(absl::FailedPreconditionError(absl::StrCat("unit ", unit, " not held")));
    nb::gil_scoped_release unlocked;
    held.pop_back();
  }

  void keep_for_backward(size_t unit, bool keep) { E()->KeepForBackward(unit, keep); }

  // The unit's gradient slot in the working dtype (zeroed, or the accumulating fp32 buffer at
  // fp32 stages 0-1): add the unit's gradients in, then grads_ready.
  Torch grads(size_t unit) {
    BufferView g;
    {
      nb::gil_scoped_release unlocked;
      g = Take(E()->WorkingGrads(unit));
    }
    return View(g);
  }

  void grads_ready(size_t unit) {
    nb::gil_scoped_release unlocked;
    Check(E()->GradsReady(unit));
  }

  // The optimizer step; under zerorun the step, loss, tokens/s (`tokens` this rank fed since
  // the last step), memory and the step-time breakdown go to `zerorun status` at once.
  nb::dict step(int64_t step, float lr, float value, double tokens) {
    StepResult r;
    {
      nb::gil_scoped_release unlocked;
      r = Take(E()->Step(step, lr, value));
      const absl::Time now = absl::Now();
      const double seconds = absl::ToDoubleSeconds(now - last_step_at_);
      last_step_at_ = now;
      if (ctx_.coordinator != nullptr) {
        (void)ctx_.coordinator->ReportStep(step, r.mean_value, seconds > 0 ? tokens / seconds : 0,
                                           static_cast<int64_t>(E()->Memory().total()),
                                           &E()->step_times());
      }
    }
    nb::dict d;
    d["grad_norm"] = r.grad_norm;
    d["clip_coef"] = r.clip_coef;
    d["skipped"] = r.skipped;
    d["loss_scale"] = r.loss_scale;
    d["mean_value"] = r.mean_value;
    return d;
  }

  void sync() {
    nb::gil_scoped_release unlocked;
    Check(E()->Sync());
  }

  nb::dict memory() const {
    const MemoryReport m = E()->Memory();
    nb::dict d;
    d["params"] = m.params;
    d["master"] = m.master;
    d["grads"] = m.grads;
    d["optimizer"] = m.optimizer;
    d["scratch"] = m.scratch;
    d["live"] = m.live;
    d["allocated"] = m.allocated;
    d["peak"] = m.peak;
    d["nvme"] = m.nvme;
    return d;
  }

  std::vector<std::string> take_notices() { return E()->TakeNotices(); }

  // Ends the engine now: its memory, threads and swap files (ZeRO-Infinity's directory under
  // nvme_path) go, and every view handed out dangles (zerorun.torch calls it at exit, when the
  // interpreter may never free the Bridge). Later calls raise RuntimeError.
  void close() {
    nb::gil_scoped_release unlocked;
    guards_.clear();
    engine_.reset();
  }

  // libzerorun's checkpoints (collective; between steps, no unit held): <dir>/<tag> with one
  // shard per rank and a manifest holding `client_state` and the effective config; `latest`.
  // frozen: rank 0's safetensors bytes of the parameters the engine does not train (SaveOptions).
  void save_checkpoint(const std::string& dir, const std::string& tag,
                       const std::string& client_state, nb::bytes frozen) {
    SaveOptions options;
    options.frozen.assign(frozen.c_str(), frozen.size());
    nb::gil_scoped_release unlocked;
    Check(E()->Sync());
    Check(
        SaveCheckpoint(*engine_, *ctx_.comm, dir, tag, client_state, ctx_.config.dump(), options));
  }

  // Loads <dir>/<tag> (empty: the one `latest` names) at any world size and stage; returns the
  // saved client_state. FileNotFoundError when there is none.
  std::string load_checkpoint(const std::string& dir, const std::string& tag) {
    nb::gil_scoped_release unlocked;
    Check(E()->Sync());
    return Take(LoadCheckpoint(*engine_, *ctx_.comm, dir, tag));
  }

 private:
  ZeroEngine* E() const {
    if (engine_ == nullptr) throw std::runtime_error("this zerorun.torch engine was closed");
    return engine_.get();
  }

  Torch View(const BufferView& v) {
    const size_t shape[1] = {v.count};
    return Torch(v.data, 1, shape, nb::find(this), nullptr, DlType(v.dtype));
  }

  RankContext ctx_;
  ZeroOptions options_;
  LrSchedule lr_;
  int micro_batch_ = 1;
  std::vector<std::string> notes_;
  // Before the guards: they are given back before the engine goes.
  std::unique_ptr<ZeroEngine> engine_;
  std::vector<std::vector<UnitGuard>> guards_;
  absl::Time last_step_at_ = absl::Now();
};

}  // namespace
}  // namespace zerorun

NB_MODULE(_zerorun, m) {
  using zerorun::Bridge;
  m.doc() = "libzerorun's ZeRO engine for torch models (used by zerorun.torch)";
  // An engine still referenced at interpreter exit (a script's global) is not a leak to report.
  nb::set_leak_warnings(false);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const zerorun::NotFound& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    }
  });
  nb::class_<Bridge>(m, "Bridge")
      .def(nb::init<const std::string&, const std::vector<zerorun::UnitArg>&,
                    const std::vector<float>&, bool>(),
           nb::arg("config_path"), nb::arg("units"), nb::arg("adam") = std::vector<float>(),
           nb::arg("config_path_wins") = false)
      .def_prop_ro("rank", &Bridge::rank)
      .def_prop_ro("world_size", &Bridge::world_size)
      .def_prop_ro("local_rank", &Bridge::local_rank)
      .def_prop_ro("stage", &Bridge::stage)
      .def_prop_ro("dtype", &Bridge::dtype)
      .def_prop_ro("accumulation_steps", &Bridge::accumulation_steps)
      .def_prop_ro("clipping", &Bridge::clipping)
      .def_prop_ro("micro_batch", &Bridge::micro_batch)
      .def_prop_ro("overlap_comm", &Bridge::overlap_comm)
      .def_prop_ro("config_json", &Bridge::config_json)
      .def_prop_ro("notes", &Bridge::notes)
      .def_prop_ro("loss_scale", &Bridge::loss_scale)
      .def_prop_ro("last_step", &Bridge::last_step)
      .def("lr_at", &Bridge::lr_at)
      .def("offsets", &Bridge::offsets)
      .def("set_tensor", &Bridge::set_tensor, nb::arg("unit"), nb::arg("tensor"), nb::arg("values"),
           nb::arg("root") = 0)
      .def("get_tensor", &Bridge::get_tensor)
      .def("acquire", &Bridge::acquire)
      .def("release", &Bridge::release)
      .def("keep_for_backward", &Bridge::keep_for_backward)
      .def("grads", &Bridge::grads)
      .def("grads_ready", &Bridge::grads_ready)
      .def("step", &Bridge::step)
      .def("sync", &Bridge::sync)
      .def("memory", &Bridge::memory)
      .def("take_notices", &Bridge::take_notices)
      .def("save_checkpoint", &Bridge::save_checkpoint)
      .def("load_checkpoint", &Bridge::load_checkpoint)
      .def("close", &Bridge::close)
      .def("set_adam", &Bridge::set_adam)
      .def("finish_restore", &Bridge::finish_restore);
}
