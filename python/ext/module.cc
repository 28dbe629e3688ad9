// zerorun._zerorun: zerorun.torch's engine (TorchEngine, libzerorun_torch.so) as a Python module,
// over nanobind; the only file compiled against a Python version. Weights and gradient slots go
// to Python as DLPack views of the engine's own buffers (torch tensors made by
// torch.utils.dlpack, zero-copy); nothing here links libtorch, so any torch 2.x works. Errors
// become ValueError (bad input), FileNotFoundError (no checkpoint) or RuntimeError, the message
// kept whole.
//
// Threads: one Python thread drives a Bridge (the one that made it); every call into the engine
// releases the GIL. A view returned here holds a reference to the Bridge and lives as the engine
// says (torch_engine.h).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "torch_engine.h"

namespace nb = nanobind;

namespace zerorun::pyext {
namespace {

using Torch = nb::ndarray<nb::pytorch, nb::device::cpu>;
using FloatIn = nb::ndarray<float, nb::device::cpu, nb::c_contig>;

nb::dlpack::dtype DlType(FlatType t) {
  switch (t) {
    case FlatType::kFp32:
      return nb::dtype<float>();
    case FlatType::kBf16:
      return {static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat), 16, 1};
    case FlatType::kFp16:
      return {static_cast<uint8_t>(nb::dlpack::dtype_code::Float), 16, 1};
  }
  return nb::dtype<float>();
}

class Bridge {
 public:
  Bridge(const std::string& config_path, const std::vector<UnitArg>& units,
         const std::vector<float>& adam, bool config_path_wins) {
    nb::gil_scoped_release unlocked;
    engine_ = std::make_unique<TorchEngine>(config_path, units, adam, config_path_wins);
  }

  TorchEngine& e() { return *engine_; }
  const TorchEngine& e() const { return *engine_; }

  // Runs `fn` on the engine without the GIL.
  template <typename Fn>
  auto Unlocked(Fn fn) {
    nb::gil_scoped_release unlocked;
    return fn(*engine_);
  }

  void set_tensor(size_t unit, size_t tensor, FloatIn values, int root) {
    Unlocked(
        [&](TorchEngine& e) { e.set_tensor(unit, tensor, values.data(), values.size(), root); });
  }
  void set_adam(size_t unit, size_t tensor, FloatIn m, FloatIn v) {
    if (m.size() != v.size()) throw Error(ErrorKind::kValue, "m and v differ in size");
    Unlocked([&](TorchEngine& e) { e.set_adam(unit, tensor, m.data(), v.data(), m.size()); });
  }
  void get_tensor(size_t unit, size_t tensor, FloatIn out) {
    Unlocked([&](TorchEngine& e) { e.get_tensor(unit, tensor, out.data()); });
  }
  Torch acquire(size_t unit, bool backward) {
    return View(Unlocked([&](TorchEngine& e) { return e.acquire(unit, backward); }));
  }
  Torch grads(size_t unit) {
    return View(Unlocked([&](TorchEngine& e) { return e.grads(unit); }));
  }
  nb::dict step(int64_t step, float lr, float value, double tokens) {
    const StepOut r = Unlocked([&](TorchEngine& e) { return e.step(step, lr, value, tokens); });
    nb::dict d;
    d["grad_norm"] = r.grad_norm;
    d["clip_coef"] = r.clip_coef;
    d["skipped"] = r.skipped;
    d["loss_scale"] = r.loss_scale;
    d["mean_value"] = r.mean_value;
    return d;
  }
  nb::dict memory() const {
    const MemoryOut m = e().memory();
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
  void save_checkpoint(const std::string& dir, const std::string& tag,
                       const std::string& client_state, nb::bytes frozen) {
    const std::string bytes(frozen.c_str(), frozen.size());
    Unlocked([&](TorchEngine& e) { e.save_checkpoint(dir, tag, client_state, bytes); });
  }

 private:
  Torch View(const Flat& v) {
    const size_t shape[1] = {v.count};
    return Torch(v.data, 1, shape, nb::find(this), nullptr, DlType(v.type));
  }

  std::unique_ptr<TorchEngine> engine_;
};

}  // namespace
}  // namespace zerorun::pyext

NB_MODULE(_zerorun, m) {
  using zerorun::pyext::Bridge;
  using zerorun::pyext::TorchEngine;
  m.doc() = "libzerorun's ZeRO engine for torch models (used by zerorun.torch)";
  // An engine still referenced at interpreter exit (a script's global) is not a leak to report.
  nb::set_leak_warnings(false);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const zerorun::pyext::Error& e) {
      PyObject* type = e.kind == zerorun::pyext::ErrorKind::kValue      ? PyExc_ValueError
                       : e.kind == zerorun::pyext::ErrorKind::kNotFound ? PyExc_FileNotFoundError
                                                                        : PyExc_RuntimeError;
      PyErr_SetString(type, e.what());
    }
  });
  auto get = [](auto method) { return [method](const Bridge& b) { return (b.e().*method)(); }; };
  nb::class_<Bridge>(m, "Bridge")
      .def(nb::init<const std::string&, const std::vector<zerorun::pyext::UnitArg>&,
                    const std::vector<float>&, bool>(),
           nb::arg("config_path"), nb::arg("units"), nb::arg("adam") = std::vector<float>(),
           nb::arg("config_path_wins") = false)
      .def_prop_ro("rank", get(&TorchEngine::rank))
      .def_prop_ro("world_size", get(&TorchEngine::world_size))
      .def_prop_ro("local_rank", get(&TorchEngine::local_rank))
      .def_prop_ro("stage", get(&TorchEngine::stage))
      .def_prop_ro("dtype", get(&TorchEngine::dtype))
      .def_prop_ro("accumulation_steps", get(&TorchEngine::accumulation_steps))
      .def_prop_ro("clipping", get(&TorchEngine::clipping))
      .def_prop_ro("micro_batch", get(&TorchEngine::micro_batch))
      .def_prop_ro("overlap_comm", get(&TorchEngine::overlap_comm))
      .def_prop_ro("config_json", get(&TorchEngine::config_json))
      .def_prop_ro("notes", get(&TorchEngine::notes))
      .def_prop_ro("loss_scale", get(&TorchEngine::loss_scale))
      .def_prop_ro("last_step", get(&TorchEngine::last_step))
      .def("lr_at", [](const Bridge& b, int64_t step) { return b.e().lr_at(step); })
      .def("offsets", [](const Bridge& b, size_t unit) { return b.e().offsets(unit); })
      .def("set_tensor", &Bridge::set_tensor, nb::arg("unit"), nb::arg("tensor"), nb::arg("values"),
           nb::arg("root") = 0)
      .def("get_tensor", &Bridge::get_tensor)
      .def("acquire", &Bridge::acquire)
      .def("release",
           [](Bridge& b, size_t unit) { b.Unlocked([&](TorchEngine& e) { e.release(unit); }); })
      .def("keep_for_backward",
           [](Bridge& b, size_t unit, bool keep) { b.e().keep_for_backward(unit, keep); })
      .def("grads", &Bridge::grads)
      .def("grads_ready",
           [](Bridge& b, size_t unit) { b.Unlocked([&](TorchEngine& e) { e.grads_ready(unit); }); })
      .def("step", &Bridge::step)
      .def("sync", [](Bridge& b) { b.Unlocked([](TorchEngine& e) { e.sync(); }); })
      .def("memory", &Bridge::memory)
      .def("take_notices", [](Bridge& b) { return b.e().take_notices(); })
      .def("save_checkpoint", &Bridge::save_checkpoint)
      .def("load_checkpoint",
           [](Bridge& b, const std::string& dir, const std::string& tag) {
             return b.Unlocked([&](TorchEngine& e) { return e.load_checkpoint(dir, tag); });
           })
      .def("close", [](Bridge& b) { b.Unlocked([](TorchEngine& e) { e.close(); }); })
      .def("set_adam", &Bridge::set_adam)
      .def("finish_restore", [](Bridge& b, int64_t step) {
        b.Unlocked([&](TorchEngine& e) { e.finish_restore(step); });
      });
}
