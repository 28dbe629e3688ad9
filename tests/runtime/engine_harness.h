// The ZeRO engine test harness: a small model of uneven units, ranks as threads over a real
// Gloo communicator driving the engine (forward acquires, backward gradients, steps, saves and
// resumes), and a single-process unsharded AdamW reference to compare with.
#ifndef ZERORUN_TESTS_RUNTIME_ENGINE_HARNESS_H_
#define ZERORUN_TESTS_RUNTIME_ENGINE_HARNESS_H_

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "zerorun/checkpoint.h"
#include "zerorun/comm.h"
#include "zerorun/kv_store.h"
#include "zerorun/zero_engine.h"

namespace zerorun::engine_harness {

// Uneven tensor sizes so shards cut through tensors and units need padding. The biases take no
// weight decay (a torch param group's weight_decay 0), so shards also cut through decay runs.
inline const std::vector<UnitSpec> kUnits = {
    {"embed", {{"w", {13, 7}}, {"b", {5}, 0.0f}}},
    {"block", {{"w", {33}}, {"b", {3}, 0.0f}, {"g", {2, 9}}}},
    {"head", {{"w", {17}}}},
};

inline float Init(size_t unit, size_t tensor, size_t i) {
  return std::sin(0.37f * static_cast<float>(i + 11 * tensor + 101 * unit));
}

// The gradient rank `rank` computes at micro-step `micro` of step `step` for current params p:
// a quadratic pull towards a rank-specific target, so ranks disagree and averaging matters.
inline float Grad(int rank, int step, int micro, float p, size_t i) {
  const float target = 0.1f * static_cast<float>(rank + 1) * std::cos(0.05f * (i + step + micro));
  return 2.0f * (p - target) + 0.01f * static_cast<float>(micro);
}

struct Run {
  std::vector<std::vector<float>> params;  // Per tensor, flattened in unit/tensor order.
  std::vector<float> norms;
  std::vector<float> mean_values;  // Step()'s rank + 1, averaged over the ranks.
  MemoryReport memory;
  GatherStats stats;
  bool working_is_rounded_master = true;  // 16-bit: every working weight == RNE(master).
  bool working_view_matches = true;       // UnitGuard::weights() widens to tensor().
  bool fp32_views = true;                 // UnitGuard::tensor() was never nullptr.
  std::vector<std::string> notices;       // ZeroEngine::TakeNotices() at the end.
};

// How the ranks drive the engine: a forward pass over the units, then a backward pass that
// reads each unit's parameters under a guard and adds Grad() into Grads(u).
struct Drive {
  bool tied = false;          // Unit 0 is used twice: nested guard, two gradient rounds.
  int reorder_from_step = 0;  // From this step on, the forward pass runs in reverse order.
  std::string ckpt_dir;       // With save_at: save a checkpoint there after that step.
  int save_at = 0;
  bool save_every_step = false;  // Save after every step instead, keeping the newest keep_last.
  int keep_last = 0;
  bool resume = false;      // Load the latest checkpoint of ckpt_dir and go on from its step.
  bool async_save = false;  // StartCheckpoint, polled after every later step, waited at the end.
  // Gradients rounded to the working dtype before they are written (exact in it), through
  // Grads() as fp32 or, with working_grads, through WorkingGrads() in the working dtype.
  bool round_grads = false;
  bool working_grads = false;
};

// Element i of tensor t of a guard's working weights, widened to fp32 (what tensor(t)[i] holds
// where the engine widens).
inline float Weight(const UnitGuard& g, size_t t, size_t i) {
  const BufferView w = g.weights(t);
  if (w.dtype == DType::kFp32) return static_cast<const float*>(w.data)[i];
  const uint16_t h = static_cast<const uint16_t*>(w.data)[i];
  return w.dtype == DType::kBf16 ? Bf16ToFloat(h) : Fp16ToFloat(h);
}

// `x` rounded to `dtype` and back (x itself for fp32).
inline float RoundTo(DType dtype, float x) {
  if (dtype == DType::kBf16) return Bf16ToFloat(FloatToBf16(x));
  if (dtype == DType::kFp16) return Fp16ToFloat(FloatToFp16(x));
  return x;
}

inline absl::Status TrainRank(ZeroEngine& e, Communicator& comm, int r, const ZeroOptions& options,
                              int steps, const Drive& drive, Run* run) {
  const Layout& layout = e.layout();
  const size_t units = kUnits.size();
  if (absl::Status s = e.Init([](size_t u, size_t t, size_t begin, size_t end, float* out) {
        for (size_t i = begin; i < end; ++i) out[i - begin] = Init(u, t, i);
      });
      !s.ok()) {
    return s;
  }
  int first_step = 1;
  if (drive.resume) {
    absl::StatusOr<std::string> state = LoadCheckpoint(e, comm, drive.ckpt_dir, "");
    if (!state.ok()) return state.status();
    const size_t at = state->find("\"step\":");
    first_step = std::atoi(state->c_str() + at + 7) + 1;
  }
  std::unique_ptr<PendingSave> pending;
  for (int step = first_step; step <= steps; ++step) {
    for (int micro = 0; micro < options.gradient_accumulation_steps; ++micro) {
      const bool reverse = drive.reorder_from_step > 0 && step >= drive.reorder_from_step;
      for (size_t k = 0; k < units; ++k) {
        absl::StatusOr<UnitGuard> g = e.Acquire(reverse ? units - 1 - k : k, Pass::kForward);
        if (!g.ok()) return g.status();
      }
      for (size_t u = units; u-- > 0;) {  // Backward order.
        absl::StatusOr<UnitGuard> guard = e.Acquire(u, Pass::kBackward);
        if (!guard.ok()) return guard.status();
        const int rounds = drive.tied && u == 0 ? 2 : 1;
        for (int round = 0; round < rounds; ++round) {
          std::optional<absl::StatusOr<UnitGuard>> tied;
          if (round == 1) tied.emplace(e.Acquire(u, Pass::kBackward));  // Nested.
          const float share = (rounds == 1 ? 1.0f : round == 0 ? 0.25f : 0.75f) * e.loss_scale();
          auto value = [&](size_t t, size_t i) {
            const float x = share * Grad(r, step, micro, Weight(*guard, t, i), i);
            return drive.round_grads ? RoundTo(options.dtype, x) : x;
          };
          if (drive.working_grads) {
            absl::StatusOr<BufferView> g = e.WorkingGrads(u);
            if (!g.ok()) return g.status();
            for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
              const TensorLayout& tl = layout.units()[u].tensors[t];
              for (size_t i = 0; i < tl.numel; ++i) {
                const float x = value(t, i);
                if (g->dtype == DType::kFp32) {
                  static_cast<float*>(g->data)[tl.offset + i] += x;
                } else {  // += in the working dtype (the slot starts at zero: exact).
                  uint16_t& h = static_cast<uint16_t*>(g->data)[tl.offset + i];
                  h = g->dtype == DType::kBf16 ? FloatToBf16(Bf16ToFloat(h) + x)
                                               : FloatToFp16(Fp16ToFloat(h) + x);
                }
              }
            }
          } else {
            absl::StatusOr<float*> g = e.Grads(u);
            if (!g.ok()) return g.status();
            for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
              const TensorLayout& tl = layout.units()[u].tensors[t];
              for (size_t i = 0; i < tl.numel; ++i) (*g)[tl.offset + i] += value(t, i);
            }
          }
          if (absl::Status s = e.GradsReady(u); !s.ok()) return s;
        }
      }
    }
    absl::StatusOr<StepResult> result = e.Step(step, options.adam.lr, static_cast<float>(r + 1));
    if (!result.ok()) return result.status();
    run->norms.push_back(result->grad_norm);
    run->mean_values.push_back(result->mean_value);
    if (pending != nullptr) {
      if (absl::StatusOr<bool> done = pending->Poll(comm); !done.ok()) return done.status();
    }
    const std::string client = absl::StrCat("{\"step\": ", step, "}");
    if (step == drive.save_at && drive.async_save) {
      absl::StatusOr<std::unique_ptr<PendingSave>> started =
          StartCheckpoint(e, comm, drive.ckpt_dir, DefaultTag(step), client, "{}");
      if (!started.ok()) return started.status();
      pending = *std::move(started);
    } else if (step == drive.save_at || (drive.save_every_step && !drive.ckpt_dir.empty())) {
      if (absl::Status s = SaveCheckpoint(e, comm, drive.ckpt_dir, DefaultTag(step), client, "{}",
                                          SaveOptions{drive.keep_last});
          !s.ok()) {
        return s;
      }
    }
  }
  if (pending != nullptr) {
    if (absl::Status s = pending->Wait(comm); !s.ok()) return s;
  }
  for (size_t u = 0; u < units; ++u) {
    absl::StatusOr<UnitGuard> guard = e.Acquire(u, Pass::kForward);
    if (!guard.ok()) return guard.status();
    for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
      std::vector<float> p(layout.units()[u].tensors[t].numel);
      if (absl::Status s = e.GetTensor(u, t, p.data()); !s.ok()) return s;
      for (size_t i = 0; i < p.size() && options.dtype != DType::kFp32; ++i) {
        const float rounded = options.dtype == DType::kBf16 ? Bf16ToFloat(FloatToBf16(p[i]))
                                                            : Fp16ToFloat(FloatToFp16(p[i]));
        run->working_is_rounded_master &= Weight(*guard, t, i) == rounded;
      }
      // The working-dtype view holds what the fp32 view widens (where there is one).
      const BufferView w = guard->weights(t);
      run->working_view_matches &= w.dtype == options.dtype && w.count == p.size();
      run->fp32_views &= guard->tensor(t) != nullptr;
      for (size_t i = 0; i < w.count && guard->tensor(t) != nullptr; ++i) {
        run->working_view_matches &= Weight(*guard, t, i) == guard->tensor(t)[i];
      }
      run->params.push_back(std::move(p));
    }
  }
  run->memory = e.Memory();
  run->stats = e.gather_stats();
  run->notices = e.TakeNotices();
  return absl::OkStatus();
}

inline Run RunEngine(int world, const ZeroOptions& options, int steps, const Drive& drive = {}) {
  InMemoryKvStore store;
  std::vector<Run> runs(world);
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, world, {});
      if (!comm.ok()) {
        status[r] = comm.status();
        return;
      }
      ZeroOptions mine = options;  // Each rank's own NVMe swap directory.
      mine.swap_tag = absl::StrCat(options.swap_tag, "-rank", r);
      auto engine = ZeroEngine::Create(kUnits, mine, comm->get());
      status[r] = engine.ok() ? TrainRank(**engine, **comm, r, options, steps, drive, &runs[r])
                              : engine.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r << ": " << status[r].ToString());
    REQUIRE(status[r].ok());
    REQUIRE(runs[r].params == runs[0].params);  // Every rank ends with the same parameters.
    REQUIRE(runs[r].working_is_rounded_master);
    REQUIRE(runs[r].working_view_matches);
    for (float mean : runs[r].mean_values) REQUIRE(mean == (world + 1) / 2.0f);
  }
  return runs[0];
}

// The same training on one process, no sharding, no padding.
inline Run Reference(int world, const ZeroOptions& options, int steps) {
  Run run;
  std::vector<std::vector<float>> m, v;
  std::vector<AdamWHyper> hyper;  // Per tensor: its weight decay.
  for (size_t u = 0; u < kUnits.size(); ++u) {
    for (size_t t = 0; t < kUnits[u].tensors.size(); ++t) {
      hyper.push_back(options.adam);
      if (kUnits[u].tensors[t].weight_decay >= 0) {
        hyper.back().weight_decay = kUnits[u].tensors[t].weight_decay;
      }
      size_t n = 1;
      for (int64_t d : kUnits[u].tensors[t].shape) n *= static_cast<size_t>(d);
      std::vector<float> p(n);
      for (size_t i = 0; i < n; ++i) p[i] = Init(u, t, i);
      run.params.push_back(p);
      m.emplace_back(n, 0.0f);
      v.emplace_back(n, 0.0f);
    }
  }
  const int ga = options.gradient_accumulation_steps;
  for (int step = 1; step <= steps; ++step) {
    std::vector<std::vector<double>> g(run.params.size());
    double sq = 0;
    for (size_t k = 0; k < run.params.size(); ++k) {
      g[k].assign(run.params[k].size(), 0.0);
      for (size_t i = 0; i < run.params[k].size(); ++i) {
        for (int micro = 0; micro < ga; ++micro) {
          for (int r = 0; r < world; ++r) g[k][i] += Grad(r, step, micro, run.params[k][i], i);
        }
        g[k][i] /= static_cast<double>(world) * ga;
        sq += g[k][i] * g[k][i];
      }
    }
    const float norm = static_cast<float>(std::sqrt(sq));
    run.norms.push_back(norm);
    const float coef = options.gradient_clipping > 0
                           ? std::min(1.0f, options.gradient_clipping / (norm + 1e-6f))
                           : 1.0f;
    for (size_t k = 0; k < run.params.size(); ++k) {
      std::vector<float> gf(g[k].size());
      for (size_t i = 0; i < gf.size(); ++i) gf[i] = static_cast<float>(g[k][i]) * coef;
      AdamWStepReference(hyper[k], step, gf.size(), run.params[k].data(), gf.data(), m[k].data(),
                         v[k].data());
    }
  }
  return run;
}

// `margin`: 2e-5 for fp32 (sums in another order differ by rounding; AdamW steps are ~lr = 1e-2
// here); 16-bit runs compute gradients from rounded weights and reduce in 16 bits.
inline void RequireMatches(const Run& got, const Run& want, double margin = 2e-5) {
  REQUIRE(got.norms.size() == want.norms.size());
  for (size_t s = 0; s < got.norms.size(); ++s) {
    REQUIRE(got.norms[s] == Approx(want.norms[s]).epsilon(margin < 1e-4 ? 1e-5 : 1e-2));
  }
  REQUIRE(got.params.size() == want.params.size());
  for (size_t k = 0; k < got.params.size(); ++k) {
    for (size_t i = 0; i < got.params[k].size(); ++i) {
      REQUIRE(got.params[k][i] == Approx(want.params[k][i]).margin(margin));
    }
  }
}

// Stage 3 options that shard every unit but the 17-element head, gather at most ~3 units ahead
// and keep few units live, so eviction, persistence and prefetch all happen.
inline ZeroOptions Stage3(bool overlap) {
  ZeroOptions o;
  o.stage = 3;
  o.overlap_comm = overlap;
  o.param_persistence_threshold = 20;
  o.prefetch_bucket_size = 200;
  o.max_live_parameters = 300;
  o.max_reuse_distance = 50;
  return o;
}

}  // namespace zerorun::engine_harness

#endif  // ZERORUN_TESTS_RUNTIME_ENGINE_HARNESS_H_
