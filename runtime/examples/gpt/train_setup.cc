// Command line, config, rendezvous and the training loop of train_gpt.
#include "train_setup.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/env.h"
#include "ds_options.h"
#include "dsconfig/auto_values.h"
#include "dsconfig/config_json.h"
#include "nlohmann/json.hpp"
#include "zerorun/checkpoint.h"
#include "zerorun/counter_rng.h"
#include "zerorun/init.h"

namespace zerorun::gpt {
namespace {

using json = nlohmann::json;

double MedianOf(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::infinity();
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int ParseTrainArgs(int argc, char** argv, TrainArgs* args) {
  const char* usage =
      "usage: train_gpt [--deepspeed_config F] [--check-golden FILE | --data FILE | "
      "--random-tokens --vocab V] [--layers L] [--d-model D] [--heads H] [--seq T] [--steps N] "
      "[--log-every N] [--seed S]\n";
  for (int i = 1; i < argc; ++i) {
    if (!absl::StartsWith(argv[i], "--local_rank")) args->argv.push_back(argv[i]);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    auto number = [&](auto* out) {
      std::string text;
      return value(&text) && absl::SimpleAtoi(text, out);
    };
    bool ok = true;
    if (absl::StartsWith(a, "--local_rank")) continue;  // zerorun/DeepSpeed convention.
    // HF-style arguments fill "auto" values (pre-flight under zerorun, InitFromEnv without):
    // accepted here, applied through the effective config.
    const size_t eq = a.find('=');
    const std::string name =
        absl::StartsWith(a, "--") ? a.substr(2, eq == std::string::npos ? eq : eq - 2) : "";
    const auto& valued = dsconfig::HfValueArguments();
    const auto& flags = dsconfig::HfFlagArguments();
    if (name != "deepspeed" && std::find(valued.begin(), valued.end(), name) != valued.end()) {
      if (eq == std::string::npos) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "train_gpt: %s needs a value\n%s", a.c_str(), usage);
          return 2;
        }
        ++i;
      }
      continue;
    }
    if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
      if (eq == std::string::npos && i + 1 < argc && argv[i + 1][0] != '-') {
        ++i;  // --bf16 true
      }
      continue;
    }
    if (a == "--deepspeed_config" || a == "--deepspeed")
      ok = value(&args->config_path);
    else if (a == "--check-golden")
      ok = value(&args->check_golden);
    else if (a == "--save-dir")
      ok = value(&args->save_dir);
    else if (a == "--save-every")
      ok = number(&args->save_every);
    else if (a == "--keep-last")
      ok = number(&args->keep_last);
    else if (a == "--print-checksum")
      args->print_checksum = true;
    else if (a == "--resume") {
      args->resume = true;
      if (i + 1 < argc && argv[i + 1][0] != '-') args->resume_tag = argv[++i];
    } else if (a == "--data")
      ok = value(&args->data);
    else if (a == "--random-tokens")
      args->random_tokens = true;
    else if (a == "--vocab")
      ok = number(&args->model.vocab);
    else if (a == "--layers")
      ok = number(&args->model.layers);
    else if (a == "--d-model")
      ok = number(&args->model.d_model);
    else if (a == "--heads")
      ok = number(&args->model.heads);
    else if (a == "--seq")
      ok = number(&args->model.seq);
    else if (a == "--steps")
      ok = number(&args->steps);
    else if (a == "--log-every")
      ok = number(&args->log_every);
    else if (a == "--seed")
      ok = number(&args->seed);
    else if (a == "--help" || a == "-h") {
      std::printf("%s", usage);
      return 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "train_gpt: bad argument '%s'\n%s", a.c_str(), usage);
      return 2;
    }
  }
  if (args->model.d_model % args->model.heads != 0) {
    std::fprintf(stderr, "train_gpt: --d-model must be a multiple of --heads\n");
    return 2;
  }
  return -1;
}

absl::StatusOr<TrainSetup> Setup(const TrainArgs& args) {
  TrainSetup setup;
  InitOptions init;
  init.config_path = args.config_path;
  init.train_args = args.argv;
  absl::StatusOr<RankContext> ctx = InitFromEnv(init);
  if (!ctx.ok()) return ctx.status();
  setup.rank = ctx->rank;
  setup.world_size = ctx->world_size;
  setup.coordinator = std::move(ctx->coordinator);
  setup.store = std::move(ctx->store);
  setup.comm = std::move(ctx->comm);
  const json& config = ctx->config;
  setup.config_json = dsconfig::Dump(config, -1);
  absl::StatusOr<DsOptions> ds = ReadDsOptions(config);
  if (!ds.ok()) {
    return absl::Status(ds.status().code(),
                        absl::StrCat(ctx->config_path, ": ", ds.status().message()));
  }
  setup.options = ds->zero;
  setup.micro_batch = ds->micro_batch;
  setup.train_batch = ctx->training.batch.train_batch_size;
  setup.notes = ds->notes;
  const ZeroOptions& o = setup.options;
  setup.lr.base_lr = o.adam.lr;
  if (const json* type = Find(config, {"scheduler", "type"}); type && type->is_string()) {
    const std::string name = type->get<std::string>();
    using Kind = LrSchedule::Kind;
    if (name == "WarmupLR") {
      setup.lr.kind = Kind::kWarmupLR;
    } else if (name == "WarmupDecayLR") {
      setup.lr.kind = Kind::kWarmupDecayLR;
    } else if (name == "WarmupCosineLR") {
      setup.lr.kind = Kind::kWarmupCosineLR;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("scheduler.type ", dsconfig::Dump(*type),
                       " is not supported (WarmupLR, WarmupDecayLR and WarmupCosineLR are)"));
    }
    LrSchedule& lr = setup.lr;
    for (absl::Status s :
         {ReadNumber(config, {"scheduler", "params", "warmup_max_lr"}, &lr.warmup_max_lr),
          ReadNumber(config, {"scheduler", "params", "warmup_min_lr"}, &lr.warmup_min_lr),
          ReadNumber(config, {"scheduler", "params", "warmup_num_steps"}, &lr.warmup_num_steps),
          ReadNumber(config, {"scheduler", "params", "total_num_steps"}, &lr.total_num_steps),
          ReadNumber(config, {"scheduler", "params", "warmup_min_ratio"}, &lr.warmup_min_ratio),
          ReadNumber(config, {"scheduler", "params", "cos_min_ratio"}, &lr.cos_min_ratio)}) {
      if (!s.ok()) return s;
    }
    if (lr.kind != Kind::kWarmupLR && lr.total_num_steps <= lr.warmup_num_steps) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scheduler ", name, " needs params.total_num_steps greater than warmup_num_steps (",
          lr.warmup_num_steps, ")"));
    }
    const json* kind = Find(config, {"scheduler", "params", "warmup_type"});
    lr.log_warmup = !(kind && kind->is_string() && kind->get<std::string>() == "linear");
  }
  return setup;
}

EngineParams::EngineParams(ZeroEngine& engine, Pass pass)
    : engine_(engine), pass_(pass), guards_(engine.layout().units().size()) {}

TensorPtrs EngineParams::Acquire(size_t unit) {
  absl::StatusOr<UnitGuard> guard = engine_.Acquire(unit, pass_);
  if (!guard.ok()) {
    status_.Update(guard.status());
    sink_.assign(engine_.layout().units()[unit].padded, 0.0f);  // Keeps the kernels in bounds.
    return UnitViews(engine_.layout(), unit, sink_.data());
  }
  TensorPtrs views = guard->tensors();
  guards_[unit].push_back(*std::move(guard));
  return views;
}

void EngineParams::Release(size_t unit) {
  if (!guards_[unit].empty()) guards_[unit].pop_back();
}

absl::StatusOr<float> TrainMicroStep(GptModel& model, ZeroEngine& engine, const int* tokens,
                                     int batch) {
  float loss = 0;
  {
    EngineParams params(engine, Pass::kForward);
    loss = model.Forward(params, tokens, batch, engine.loss_scale());
    if (!params.status().ok()) return params.status();
  }
  EngineParams params(engine, Pass::kBackward);
  absl::Status status;
  std::vector<float> sink;  // Keeps the kernels in bounds if a slot cannot be had.
  model.Backward(
      params,
      [&](size_t u) {
        absl::StatusOr<float*> g = engine.Grads(u);
        if (!g.ok()) {
          status.Update(g.status());
          sink.assign(engine.layout().units()[u].padded, 0.0f);
        }
        return UnitViews(engine.layout(), u, g.ok() ? *g : sink.data());
      },
      [&](size_t u) { status.Update(engine.GradsReady(u)); });
  status.Update(params.status());
  if (!status.ok()) return status;
  return loss;
}

int Train(const TrainArgs& args, TrainSetup& setup) {
  GptConfig config = args.model;
  std::vector<int> corpus;
  if (!args.random_tokens) {
    const std::string path = args.data.empty() ? TRAIN_GPT_DEFAULT_DATA : args.data;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "train_gpt: cannot read corpus %s\n", path.c_str());
      return 66;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    std::map<unsigned char, int> ids;
    for (unsigned char ch : text) ids[ch] = 0;
    int next = 0;
    for (auto& [ch, id] : ids) id = next++;
    for (unsigned char ch : text) corpus.push_back(ids[ch]);
    config.vocab = next;
  } else if (config.vocab <= 0) {
    config.vocab = 4096;
  }
  auto engine_or = ZeroEngine::Create(GptUnits(config), setup.options, setup.comm.get());
  if (!engine_or.ok()) {
    std::fprintf(stderr, "train_gpt: %s\n", std::string(engine_or.status().message()).c_str());
    return 2;
  }
  ZeroEngine& engine = **engine_or;
  const Layout& layout = engine.layout();
  // Counter-based init on the shard: identical at any world size; stage 3 fills only its slice.
  engine.Init([&](size_t u, size_t t, size_t begin, size_t end, float* out) {
    const std::string& name = layout.units()[u].tensors[t].name;
    const bool bias = absl::EndsWith(name, "bias");
    const bool norm = absl::StartsWith(name, "ln");
    const uint64_t tensor_key = (static_cast<uint64_t>(u) << 8) | t;
    for (size_t i = begin; i < end; ++i) {
      out[i - begin] = bias ? 0.0f : norm ? 1.0f : 0.02f * CounterNormal(args.seed, tensor_key, i);
    }
  });
  int first_step = 1;
  if (args.resume) {
    absl::StatusOr<std::string> state =
        LoadCheckpoint(engine, *setup.comm, args.save_dir, args.resume_tag);
    if (!state.ok()) {
      std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                   std::string(state.status().message()).c_str());
      const absl::StatusCode code = state.status().code();
      return code == absl::StatusCode::kNotFound             ? 66
             : code == absl::StatusCode::kDataLoss           ? 65
             : code == absl::StatusCode::kFailedPrecondition ? 78
                                                             : 70;
    }
    const nlohmann::json client = nlohmann::json::parse(*state, nullptr, false);
    first_step = (client.is_object() ? client.value("step", 0) : 0) + 1;
    if (setup.rank == 0) {
      std::printf("train_gpt: resumed from %s at step %d\n", args.save_dir.c_str(), first_step - 1);
    }
  }
  GptModel model(config);
  const int b = setup.micro_batch, t_len = config.seq;
  std::vector<int> tokens(static_cast<size_t>(b) * (t_len + 1));
  const int ga = setup.options.gradient_accumulation_steps;
  if (setup.rank == 0) {
    const ZeroOptions& o = setup.options;
    std::printf(
        "train_gpt: %zu parameters (vocab %d, d_model %d, %d heads, %d layers, seq %d); "
        "ZeRO stage %d, %s, overlap_comm %s, on %d rank(s); micro batch %d x accumulation %d\n",
        layout.num_params(), config.vocab, config.d_model, config.heads, config.layers, t_len,
        o.stage, DTypeName(o.dtype), o.overlap_comm ? "on" : "off", setup.world_size, b, ga);
    for (const std::string& note : setup.notes) std::printf("train_gpt: note: %s\n", note.c_str());
    std::fflush(stdout);
  }
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  std::vector<double> step_seconds;
  for (int step = first_step; step <= args.steps; ++step) {
    float loss_sum = 0;
    for (int micro = 0; micro < ga; ++micro) {
      const uint64_t key = Mix64(args.seed ^ Mix64(static_cast<uint64_t>(step) * 131 + micro) ^
                                 (static_cast<uint64_t>(setup.rank) << 48));
      for (int row = 0; row < b; ++row) {
        if (args.random_tokens) {
          for (int j = 0; j <= t_len; ++j) {
            tokens[row * (t_len + 1) + j] =
                static_cast<int>(Mix64(key + row * 7919 + j) % static_cast<uint64_t>(config.vocab));
          }
        } else {
          const size_t start_pos = Mix64(key + row) % (corpus.size() - t_len - 1);
          std::copy_n(corpus.begin() + start_pos, t_len + 1, tokens.begin() + row * (t_len + 1));
        }
      }
      absl::StatusOr<float> loss = TrainMicroStep(model, engine, tokens.data(), b);
      if (!loss.ok()) {
        std::fprintf(stderr, "train_gpt: %s\n", std::string(loss.status().message()).c_str());
        return 70;
      }
      loss_sum += *loss;
    }
    const float lr = setup.lr.At(step);
    absl::StatusOr<StepResult> result = engine.Step(step, lr, loss_sum / ga);
    if (!result.ok()) {
      std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                   std::string(result.status().message()).c_str());
      return 70;
    }
    const float loss = result->mean_value;  // Averaged over the ranks by Step().
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    last = now;
    const double tokens_per_s = static_cast<double>(b) * t_len * ga * setup.world_size / seconds;
    if (step > 2) step_seconds.push_back(seconds);  // The first steps warm caches and pages.
    if (setup.coordinator) {
      (void)setup.coordinator->ReportStep(step, loss, tokens_per_s,
                                          static_cast<int64_t>(engine.Memory().total()));
    }
    if (setup.rank == 0 && (step % args.log_every == 0 || step == 1 || step == args.steps)) {
      const std::string scale =
          setup.options.dtype == DType::kFp16
              ? absl::StrCat(" | loss scale ", result->loss_scale,
                             result->skipped ? " (overflow: step skipped)" : "")
              : (result->skipped ? " | non-finite gradient: step skipped" : "");
      std::printf("step %4d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tokens/s%s\n", step,
                  args.steps, loss, lr, result->grad_norm, tokens_per_s, scale.c_str());
      std::fflush(stdout);
    }
    if (args.save_every > 0 && !args.save_dir.empty() && step % args.save_every == 0) {
      const std::string client = nlohmann::json({{"step", step}, {"seed", args.seed}}).dump();
      if (absl::Status s = SaveCheckpoint(engine, *setup.comm, args.save_dir, DefaultTag(step),
                                          client, setup.config_json, args.keep_last);
          !s.ok()) {
        std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                     std::string(s.message()).c_str());
        return 73;
      }
      if (setup.rank == 0) {
        std::printf("train_gpt: saved %s/%s\n", args.save_dir.c_str(), DefaultTag(step).c_str());
        std::fflush(stdout);
      }
    }
  }
  if (args.print_checksum) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a over every parameter's fp32 bits.
    for (size_t u = 0; u < layout.units().size(); ++u) {
      for (size_t t = 0; t < layout.units()[u].tensors.size(); ++t) {
        std::vector<float> values(layout.units()[u].tensors[t].numel);
        if (!engine.GetTensor(u, t, values.data()).ok()) return 70;
        const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
        for (size_t i = 0; i < values.size() * sizeof(float); ++i) {
          hash = (hash ^ bytes[i]) * 1099511628211ull;
        }
      }
    }
    if (setup.rank == 0) {
      std::printf("train_gpt: parameter checksum %016llx\n", static_cast<unsigned long long>(hash));
    }
  }
  if (setup.rank == 0) {
    const MemoryReport m = engine.Memory();
    const double total_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf(
        "train_gpt: %d steps in %.1f s; model states per rank: params %.1f MiB, master %.1f MiB, "
        "grads %.1f MiB, optimizer %.1f MiB; slots: gradients %.1f MiB, parameters %.1f MiB; "
        "peak RSS %.0f MiB; median %.0f tokens/s\n",
        args.steps, total_s, m.params / 1048576.0, m.master / 1048576.0, m.grads / 1048576.0,
        m.optimizer / 1048576.0, m.scratch / 1048576.0, m.live / 1048576.0,
        usage.ru_maxrss / 1024.0,
        static_cast<double>(b) * t_len * ga * setup.world_size / MedianOf(step_seconds));
  }
  return 0;
}

}  // namespace zerorun::gpt
