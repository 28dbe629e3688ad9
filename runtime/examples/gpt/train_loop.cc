// train_gpt's training loop: data sampling by global row (the same batches at any world size),
// checkpoint save and resume (also after a zerorun --max-restarts restart), and the end summary.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/exit_codes.h"
#include "base/rank_env.h"
#include "nlohmann/json.hpp"
#include "train_setup.h"
#include "zerorun/checkpoint.h"
#include "zerorun/counter_rng.h"

namespace zerorun::gpt {
namespace {

double MedianOf(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::infinity();
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The restart attempt zerorun runs (ZERORUN_RESTART_COUNT; 0 when not restarted).
int Attempt() {
  int attempt = 0;
  const char* text = std::getenv(rank_env::kRestartCount);
  return text != nullptr && absl::SimpleAtoi(text, &attempt) ? attempt : 0;
}

// The character-level corpus as token ids (sorted byte values); sets config->vocab.
absl::StatusOr<std::vector<int>> LoadCorpus(const std::string& path, GptConfig* config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read corpus ", path));
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  std::map<unsigned char, int> ids;
  for (unsigned char ch : text) ids[ch] = 0;
  int next = 0;
  for (auto& [ch, id] : ids) id = next++;
  std::vector<int> corpus;
  corpus.reserve(text.size());
  for (unsigned char ch : text) corpus.push_back(ids[ch]);
  config->vocab = next;
  if (corpus.size() <= static_cast<size_t>(config->seq) + 1) {
    return absl::InvalidArgumentError(absl::StrCat("corpus ", path, " is shorter than --seq"));
  }
  return corpus;
}

// Fills `rows` rows of T+1 tokens for global rows first_row.. of `step`: a row's content depends
// only on (seed, step, global row), so a global batch is the same at every world size.
void FillRows(const TrainArgs& args, const std::vector<int>& corpus, const GptConfig& config,
              int step, int64_t first_row, int rows, int* out) {
  const int t_len = config.seq;
  for (int r = 0; r < rows; ++r) {
    const uint64_t key =
        Mix64(args.seed ^ Mix64(static_cast<uint64_t>(step) * 0x9e3779b97f4a7c15ull +
                                static_cast<uint64_t>(first_row + r)));
    int* row = out + static_cast<size_t>(r) * (t_len + 1);
    if (args.random_tokens) {
      for (int j = 0; j <= t_len; ++j) {
        row[j] = static_cast<int>(Mix64(key + j) % static_cast<uint64_t>(config.vocab));
      }
    } else {
      const size_t start = Mix64(key) % (corpus.size() - t_len - 1);
      std::copy_n(corpus.begin() + start, t_len + 1, row);
    }
  }
}

// A training step's failure: kExitPeerFailed when a peer rank died (the communicator's Aborted),
// so zerorun names that peer as the root cause; else 70.
int FailureExit(const absl::Status& s) {
  return s.code() == absl::StatusCode::kAborted ? kExitPeerFailed : kExitSoftware;
}

// The exit code for a failure before training: missing file 66, bad data 65, another model 78,
// a file system that is full or refuses us 73, else `otherwise`.
int ExitCodeOf(const absl::Status& s, int otherwise = kExitSoftware) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return kExitNoInput;
    case absl::StatusCode::kDataLoss:
      return kExitDataErr;
    case absl::StatusCode::kFailedPrecondition:
      return kExitConfig;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kPermissionDenied:
      return kExitCantCreate;
    default:
      return otherwise;
  }
}

// --resume, or a restart by zerorun with a checkpoint in --save-dir: loads it and returns the
// first step to train; 1 when there is nothing to resume.
absl::StatusOr<int> MaybeResume(const TrainArgs& args, TrainSetup& setup, ZeroEngine& engine) {
  const int attempt = Attempt();
  std::string tag = args.resume_tag;
  bool resume = args.resume;
  if (attempt > 0 && !args.save_dir.empty()) {
    // A restart goes on from the newest checkpoint, whatever the first attempt resumed from.
    const bool have = access((args.save_dir + "/latest").c_str(), F_OK) == 0;
    if (setup.rank == 0) {
      std::printf(
          "train_gpt: restart attempt %d: %s\n", attempt,
          have ? absl::StrCat("resuming from ", args.save_dir, "/latest").c_str()
               : absl::StrCat("no checkpoint in ", args.save_dir, " yet, starting from step 1")
                     .c_str());
    }
    resume = have;
    tag.clear();
  }
  if (!resume) return 1;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> state = LoadCheckpoint(engine, *setup.comm, args.save_dir, tag);
  if (!state.ok()) return state.status();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const nlohmann::json client = nlohmann::json::parse(*state, nullptr, false);
  const int step = client.is_object() ? client.value("step", 0) : 0;
  if (setup.rank == 0) {
    const double bytes = 12.0 * static_cast<double>(engine.state_store().layout().elements());
    std::printf("train_gpt: resumed from %s at step %d (%d x %.1f MiB in %.3f s, %.2f GB/s)\n",
                args.save_dir.c_str(), step, setup.world_size, bytes / 1048576.0, seconds,
                bytes * setup.world_size / seconds / 1e9);
  }
  return step + 1;
}

// --save-dir/--save-every: a checkpoint after every K-th step, synchronous or (--async-save)
// written while the next steps train and published once every rank's shard is on disk.
class Saver {
 public:
  Saver(const TrainArgs& args, TrainSetup& setup, ZeroEngine& engine)
      : args_(args), setup_(setup), engine_(engine) {
    if (args_.async_save && args_.save_every > 0) PrepareAsyncCheckpoint(engine_);
  }

  absl::Status AfterStep(int step) {
    if (pending_ != nullptr) {
      const auto start = Clock::now();
      absl::StatusOr<bool> done = pending_->Poll(*setup_.comm);
      stalled_ += Seconds(start);
      if (!done.ok()) return done.status();
      if (*done) Published();
    }
    if (args_.save_every <= 0 || args_.save_dir.empty() || step % args_.save_every != 0) {
      return absl::OkStatus();
    }
    if (absl::Status s = Finish(); !s.ok()) return s;  // One save in flight at a time.
    const std::string client = nlohmann::json({{"step", step}, {"seed", args_.seed}}).dump();
    SaveOptions options;
    options.keep_last = args_.keep_last;
    const std::string tag = DefaultTag(step);
    const auto start = Clock::now();
    if (args_.async_save) {
      absl::StatusOr<std::unique_ptr<PendingSave>> started = StartCheckpoint(
          engine_, *setup_.comm, args_.save_dir, tag, client, setup_.config_json, options);
      stalled_ = Seconds(start);
      if (!started.ok()) return started.status();
      pending_ = *std::move(started);
      return absl::OkStatus();
    }
    SaveStats stats;
    absl::Status s = SaveCheckpoint(engine_, *setup_.comm, args_.save_dir, tag, client,
                                    setup_.config_json, options, &stats);
    if (s.ok()) Print(args_.save_dir + "/" + tag, stats, Seconds(start), -1);
    return s;
  }

  // Waits for a save in flight and publishes it; `at_end`: training is over, so the wait is
  // not a stall (it is reported apart).
  absl::Status Finish(bool at_end = false) {
    if (pending_ == nullptr) return absl::OkStatus();
    const auto start = Clock::now();
    absl::Status s = pending_->Wait(*setup_.comm);
    (at_end ? end_wait_ : stalled_) += Seconds(start);
    if (!s.ok()) return s;
    Published();
    return absl::OkStatus();
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double Seconds(Clock::time_point since) {
    return std::chrono::duration<double>(Clock::now() - since).count();
  }
  void Published() {
    Print(pending_->path(), pending_->stats(), end_wait_, stalled_);
    pending_.reset();
    end_wait_ = 0;
  }
  // One line from rank 0: the end-to-end time of a synchronous save (every rank's shard on disk
  // and published), or how long an asynchronous one stalled training.
  void Print(const std::string& path, const SaveStats& st, double seconds, double stall) const {
    if (setup_.rank != 0) return;
    const double total = static_cast<double>(st.bytes) * setup_.world_size;
    const std::string how =
        stall < 0
            ? absl::StrFormat("in %.3f s, %.2f GB/s end to end", seconds, total / seconds / 1e9)
            : absl::StrFormat("asynchronously, training stalled %.1f ms%s", stall * 1e3,
                              seconds > 0 ? absl::StrFormat(" (and %.1f ms waited for after the "
                                                            "last step)",
                                                            seconds * 1e3)
                                          : "");
    const std::string source = st.streamed
                                   ? std::string("streamed from the nvme swap, no snapshot")
                                   : absl::StrFormat("snapshot %.1f ms", st.snapshot_seconds * 1e3);
    std::printf("train_gpt: saved %s: %d x %.1f MiB %s (%s; rank 0 wrote %s in %.3f s)\n",
                path.c_str(), setup_.world_size, st.bytes / 1048576.0, how.c_str(), source.c_str(),
                st.direct ? "with O_DIRECT" : "buffered", st.write_seconds);
    std::fflush(stdout);
  }

  const TrainArgs& args_;
  TrainSetup& setup_;
  ZeroEngine& engine_;
  std::unique_ptr<PendingSave> pending_;
  double stalled_ = 0;   // Of the save in flight: StartCheckpoint, the polls, a forced wait.
  double end_wait_ = 0;  // Waiting for it after the last step.
};

int SaveFailureExit(const absl::Status& s, int rank) {
  std::fprintf(stderr, "train_gpt: rank %d: %s\n", rank, std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kAborted ? kExitPeerFailed : kExitCantCreate;
}

uint64_t ParameterChecksum(ZeroEngine& engine) {
  const Layout& layout = engine.layout();
  uint64_t hash = 1469598103934665603ull;  // FNV-1a over every parameter's fp32 bits.
  for (size_t u = 0; u < layout.units().size(); ++u) {
    for (size_t t = 0; t < layout.units()[u].tensors.size(); ++t) {
      std::vector<float> values(layout.units()[u].tensors[t].numel);
      (void)engine.GetTensor(u, t, values.data());
      const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
      for (size_t i = 0; i < values.size() * sizeof(float); ++i) {
        hash = (hash ^ bytes[i]) * 1099511628211ull;
      }
    }
  }
  return hash;
}

void PrintSummary(const TrainArgs& args, ZeroEngine& engine, double total_s, double tokens_per_step,
                  const std::vector<double>& step_s, const StepTimes& phases) {
  const MemoryReport m = engine.Memory();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "train_gpt: %d steps in %.1f s; model states per rank: params %.1f MiB, master %.1f MiB, "
      "grads %.1f MiB, optimizer %.1f MiB; slots: gradients %.1f MiB, parameters %.1f MiB; "
      "placed on device %.1f MiB, host %.1f MiB, nvme %.1f MiB; peak RSS %.0f MiB; median %.0f "
      "tokens/s\n",
      args.steps, total_s, m.params / 1048576.0, m.master / 1048576.0, m.grads / 1048576.0,
      m.optimizer / 1048576.0, m.scratch / 1048576.0, m.live / 1048576.0, m.device / 1048576.0,
      m.host / 1048576.0, m.nvme / 1048576.0, usage.ru_maxrss / 1024.0,
      tokens_per_step / MedianOf(step_s));
  if (phases.seconds > 0) {
    auto pct = [&](double part) { return 100 * part / phases.seconds; };
    std::printf(
        "train_gpt: rank 0's step time: compute %.0f%%, waiting on communication %.0f%%, "
        "optimizer %.0f%%, I/O %.0f%%\n",
        pct(phases.compute), pct(phases.comm_wait), pct(phases.optimizer), pct(phases.io));
  }
  if (const SwapReport swap = engine.Swap(); swap.file_bytes > 0) {
    auto rate = [](uint64_t bytes, double s) { return s > 0 ? bytes / s / 1e9 : 0.0; };
    std::printf(
        "train_gpt: nvme swap per rank: files %.1f MiB, buffers %.1f MiB; read %.2f GiB at "
        "%.2f GB/s, written %.2f GiB at %.2f GB/s\n",
        swap.file_bytes / 1048576.0, swap.buffer_bytes / 1048576.0, swap.bytes_read / 1073741824.0,
        rate(swap.bytes_read, swap.read_seconds), swap.bytes_written / 1073741824.0,
        rate(swap.bytes_written, swap.write_seconds));
  }
}

}  // namespace

int Train(const TrainArgs& args, TrainSetup& setup) {
  GptConfig config = args.model;
  std::vector<int> corpus;
  if (!args.random_tokens) {
    absl::StatusOr<std::vector<int>> loaded =
        LoadCorpus(args.data.empty() ? TRAIN_GPT_DEFAULT_DATA : args.data, &config);
    if (!loaded.ok()) {
      std::fprintf(stderr, "train_gpt: %s\n", std::string(loaded.status().message()).c_str());
      return loaded.status().code() == absl::StatusCode::kNotFound ? 66 : 2;
    }
    corpus = *std::move(loaded);
  } else if (config.vocab <= 0) {
    config.vocab = 4096;
  }
  auto engine_or = ZeroEngine::Create(GptUnits(config), setup.options, setup.comm.get());
  if (!engine_or.ok()) {
    std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                 std::string(engine_or.status().message()).c_str());
    return ExitCodeOf(engine_or.status(), kExitUsage);
  }
  ZeroEngine& engine = **engine_or;
  const Layout& layout = engine.layout();
  // Counter-based init on the shard: identical at any world size; stage 3 fills only its slice.
  const absl::Status init = engine.Init([&](size_t u, size_t t, size_t begin, size_t end,
                                            float* out) {
    const std::string& name = layout.units()[u].tensors[t].name;
    const bool bias = absl::EndsWith(name, "bias");
    const bool norm = absl::StartsWith(name, "ln");
    const uint64_t tensor_key = (static_cast<uint64_t>(u) << 8) | t;
    for (size_t i = begin; i < end; ++i) {
      out[i - begin] = bias ? 0.0f : norm ? 1.0f : 0.02f * CounterNormal(args.seed, tensor_key, i);
    }
  });
  if (!init.ok()) {
    std::fprintf(stderr, "train_gpt: rank %d: initialising the weights: %s\n", setup.rank,
                 std::string(init.message()).c_str());
    return ExitCodeOf(init, kExitUsage);
  }
  if (!args.init_from.empty()) {
    absl::StatusOr<ImportReport> imported = ImportWeights(engine, *setup.comm, args.init_from);
    if (!imported.ok()) {
      std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                   std::string(imported.status().message()).c_str());
      return ExitCodeOf(imported.status());
    }
    if (setup.rank == 0) {
      std::printf("train_gpt: initial weights from %s (%zu tensors%s)\n", args.init_from.c_str(),
                  imported->tensors,
                  imported->unused.empty()
                      ? ""
                      : absl::StrCat("; not in this model: ", absl::StrJoin(imported->unused, ", "))
                            .c_str());
    }
  }
  absl::StatusOr<int> first_step = MaybeResume(args, setup, engine);
  if (!first_step.ok()) {
    std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                 std::string(first_step.status().message()).c_str());
    return ExitCodeOf(first_step.status());
  }
  GptModel model(config);
  const int b = setup.micro_batch, t_len = config.seq;
  std::vector<int> tokens(static_cast<size_t>(b) * (t_len + 1));
  const int ga = setup.options.gradient_accumulation_steps;
  const double tokens_per_step = static_cast<double>(b) * t_len * ga * setup.world_size;
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
  Saver saver(args, setup, engine);
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  std::vector<double> step_seconds;
  StepTimes phases;  // Summed over the steps after warm-up.
  if (setup.coordinator) setup.coordinator->SetTotalSteps(args.steps);
  for (int step = *first_step; step <= args.steps; ++step) {
    float loss_sum = 0;
    for (int micro = 0; micro < ga; ++micro) {
      const int64_t first_row = (static_cast<int64_t>(setup.rank) * ga + micro) * b;
      FillRows(args, corpus, config, step, first_row, b, tokens.data());
      absl::StatusOr<float> loss = TrainMicroStep(model, engine, tokens.data(), b);
      if (!loss.ok()) {
        std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                     std::string(loss.status().message()).c_str());
        return FailureExit(loss.status());
      }
      loss_sum += *loss;
    }
    const float lr = setup.lr.At(step);
    absl::StatusOr<StepResult> result = engine.Step(step, lr, loss_sum / ga);
    if (!result.ok()) {
      std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                   std::string(result.status().message()).c_str());
      return FailureExit(result.status());
    }
    for (const std::string& notice : engine.TakeNotices()) {
      std::fprintf(stderr, "zerorun: %s\n", notice.c_str());
    }
    const float loss = result->mean_value;  // Averaged over the ranks by Step().
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    last = now;
    const StepTimes& times = engine.step_times();
    if (step > *first_step + 1) {  // Warm-up steps excluded.
      step_seconds.push_back(seconds);
      phases.seconds += times.seconds;
      phases.compute += times.compute;
      phases.comm_wait += times.comm_wait;
      phases.optimizer += times.optimizer;
      phases.io += times.io;
    }
    if (setup.coordinator) {
      (void)setup.coordinator->ReportStep(step, loss, tokens_per_step / seconds,
                                          static_cast<int64_t>(engine.Memory().total()), &times);
    }
    if (setup.monitor->enabled()) {
      // As DeepSpeed: rank 0's own loss, and the learning rate the scheduler set for the next step.
      absl::Status s = setup.monitor->Write(
          TrainingMonitor::StepEvents(step, setup.train_batch, loss_sum / ga, setup.lr.At(step + 1),
                                      setup.options.dtype == DType::kFp16, result->loss_scale));
      if (!s.ok()) {
        std::fprintf(stderr, "train_gpt: rank %d: %s\n", setup.rank,
                     std::string(s.message()).c_str());
        return ExitCodeOf(s);
      }
    }
    if (setup.rank == 0 && args.print_losses) std::printf("train_gpt: loss %d %.9e\n", step, loss);
    if (setup.rank == 0 && (step % args.log_every == 0 || step == 1 || step == args.steps)) {
      const std::string scale =
          setup.options.dtype == DType::kFp16
              ? absl::StrCat(" | loss scale ", result->loss_scale,
                             result->skipped ? " (overflow: step skipped)" : "")
              : (result->skipped ? " | non-finite gradient: step skipped" : "");
      std::printf("step %4d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tokens/s%s\n", step,
                  args.steps, loss, lr, result->grad_norm, tokens_per_step / seconds,
                  scale.c_str());
      std::fflush(stdout);
    }
    if (absl::Status s = saver.AfterStep(step); !s.ok()) return SaveFailureExit(s, setup.rank);
    const InjectedFailure& f = args.inject_failure;
    if (step == f.step && setup.rank == (f.rank < 0 ? setup.world_size - 1 : f.rank) &&
        Attempt() < f.attempts) {
      std::fprintf(stderr, "train_gpt: rank %d: injected failure after step %d (attempt %d)\n",
                   setup.rank, step, Attempt());
      if (f.signal > 0) {  // Dies at once, as an OOM kill does: no destructor runs.
        std::fflush(nullptr);
        kill(getpid(), f.signal);
      }
      return 3;
    }
  }
  if (absl::Status s = saver.Finish(/*at_end=*/true); !s.ok()) {
    return SaveFailureExit(s, setup.rank);
  }
  if (args.print_checksum) {
    const uint64_t hash = ParameterChecksum(engine);
    if (setup.rank == 0) {
      std::printf("train_gpt: parameter checksum %016llx\n", static_cast<unsigned long long>(hash));
    }
  }
  if (setup.rank == 0) {
    PrintSummary(args, engine,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                 tokens_per_step, step_seconds, phases);
  }
  return 0;
}

}  // namespace zerorun::gpt
