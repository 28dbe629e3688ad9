// Command line, config, rendezvous and the training loop of train_gpt.
#include "train_setup.h"

#include <sys/resource.h>
#include <unistd.h>

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
#include "absl/strings/str_split.h"
#include "base/env.h"
#include "base/rank_env.h"
#include "dsconfig/auto_values.h"
#include "dsconfig/config_json.h"
#include "nlohmann/json.hpp"
#include "zerorun/checkpoint.h"
#include "zerorun/counter_rng.h"
#include "zerorun/engine_config.h"
#include "zerorun/init.h"

namespace zerorun::gpt {
namespace {

using json = nlohmann::json;

}  // namespace

int ParseTrainArgs(int argc, char** argv, TrainArgs* args) {
  const char* usage =
      "usage: train_gpt [--deepspeed_config F] [--check-golden FILE | --data FILE | "
      "--random-tokens --vocab V] [--layers L] [--d-model D] [--heads H] [--seq T] [--steps N] "
      "[--log-every N] [--seed S] [--save-dir D --save-every K [--keep-last N] [--async-save]] "
      "[--resume [TAG]] [--init-from F.safetensors] "
      "[--print-checksum] [--print-losses] [--inject-failure STEP[:RANK[:ATTEMPTS]] "
      "[--inject-signal N]]\n";
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
    else if (a == "--init-from")
      ok = value(&args->init_from);
    else if (a == "--async-save")
      args->async_save = true;
    else if (a == "--print-losses")
      args->print_losses = true;
    else if (a == "--inject-failure") {
      std::string text;
      ok = value(&text);
      const std::vector<std::string> parts = absl::StrSplit(text, ':');
      InjectedFailure& f = args->inject_failure;
      ok = ok && parts.size() <= 3 && absl::SimpleAtoi(parts[0], &f.step) &&
           (parts.size() < 2 || absl::SimpleAtoi(parts[1], &f.rank)) &&
           (parts.size() < 3 || absl::SimpleAtoi(parts[2], &f.attempts));
    } else if (a == "--inject-signal") {
      std::string text;
      ok = value(&text) && absl::SimpleAtoi(text, &args->inject_failure.signal) &&
           args->inject_failure.signal > 0 && args->inject_failure.signal < 65;
    } else if (a == "--resume") {
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
  absl::StatusOr<EngineConfig> ds = ReadEngineConfig(config);
  if (!ds.ok()) {
    return absl::Status(ds.status().code(),
                        absl::StrCat(ctx->config_path, ": ", ds.status().message()));
  }
  setup.options = ds->zero;
  // NVMe offload: this job's and rank's own directory under nvme_path.
  const char* job = std::getenv(rank_env::kJobId);
  setup.options.swap_tag =
      absl::StrCat(job != nullptr ? job : absl::StrCat("pid", getpid()), "-rank", setup.rank);
  setup.micro_batch = ds->micro_batch;
  setup.train_batch = ctx->training.batch.train_batch_size;
  setup.notes = ds->notes;
  absl::StatusOr<std::unique_ptr<TrainingMonitor>> monitor = TrainingMonitor::Create(
      ctx->training.csv_monitor_dir, ctx->training.tensorboard_dir, setup.rank);
  if (!monitor.ok()) {
    return absl::Status(monitor.status().code(),
                        absl::StrCat(ctx->config_path, ": ", monitor.status().message()));
  }
  setup.monitor = *std::move(monitor);
  setup.lr = ds->lr;
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

}  // namespace zerorun::gpt
