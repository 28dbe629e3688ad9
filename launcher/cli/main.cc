// zerorun: the launcher CLI. run (the default), preflight, status, stop, report, estimate.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backends/launch_backend.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/version.h"
#include "cgroup.h"
#include "cli/ckpt_cli.h"
#include "cli/cli_options.h"
#include "cli/cli_words.h"
#include "cli/cluster_cli.h"
#include "cli/logs_cli.h"
#include "cli/status_cli.h"
#include "dsconfig/config_json.h"
#include "inputs/forwarded_env.h"
#include "inputs/hostfile.h"
#include "inputs/resource_filter.h"
#include "inputs/train_command.h"
#include "job/job.h"
#include "preflight/estimate.h"
#include "preflight/preflight.h"
#include "preflight/stage_advice.h"
#include "rank_supervisor.h"
#include "request_validation.h"
#include "rpc/grpc_util.h"
#include "security/tls.h"

namespace zerorun::launcher {
namespace {

int RunPreflightCommand(const Cli& cli, CLI::App* sub) {
  PreflightOptions options = BuildPreflightOptions(cli, sub->count("--hostfile") > 0);
  int exit_code = kExitOk;
  if (!ParseTrainCommand(cli, sub->remaining(), FlagNames(sub), &options, &exit_code)) {
    return exit_code;
  }
  std::unique_ptr<LaunchBackend> backend = MakeBackend(cli);
  if (backend == nullptr) return kExitUsage;
  if (absl::Status s = backend->Prepare(&options); !s.ok()) {
    std::cerr << "zerorun: " << s.message() << "\n";
    return LaunchBackendExit(s);
  }
  const PreflightReport report = RunPreflight(options, backend->agents());
  if (cli.json) {
    nlohmann::json out = ReportJson(report);
    if (cli.print_config) out["effective_config"] = report.effective_config;
    std::cout << dsconfig::Dump(out, 2) << "\n";
  } else {
    if (cli.print_config && !report.effective_config.is_null()) {
      std::cout << "# effective config: " << report.config_path << " with DeepSpeed "
                << ZR_DEEPSPEED_SEMANTICS << " defaults and resolved \"auto\" values\n"
                << dsconfig::Dump(report.effective_config, 2) << "\n\n";
    }
    std::cout << FormatTable(report);
  }
  return report.exit_code;
}

int RunJobCommand(const Cli& cli, CLI::App* sub) {
  if (!cli.job_id.empty() && !worker::ValidJobId(cli.job_id)) {
    std::cerr << "zerorun: --job-id '" << cli.job_id.substr(0, 128)
              << "' is not a job id: 1-128 characters of [A-Za-z0-9._-], not starting with '.'. "
                 "Nothing was started\n";
    return kExitUsage;
  }
  RunOptions options;
  options.preflight = BuildPreflightOptions(cli, sub->count("--hostfile") > 0);
  int exit_code = kExitOk;
  if (!ParseTrainCommand(cli, sub->remaining(), FlagNames(sub), &options.preflight, &exit_code)) {
    return exit_code;
  }
  if (options.preflight.command.program.empty()) {
    std::cerr << "zerorun: no training program given. Usage: zerorun [run] --hostfile H --config "
                 "ds.json train_bin [args...]\n";
    return kExitUsage;
  }
  options.job_id = cli.job_id;
  options.log_dir = cli.log_dir;
  options.console_ranks = cli.console_ranks;
  options.grace = absl::Seconds(cli.grace_s);
  options.heartbeat_timeout = absl::Seconds(cli.heartbeat_timeout_s);
  options.lease = absl::Seconds(cli.lease_s);
  options.node_timeout = absl::Seconds(cli.node_timeout_s);
  options.reconnect_window = absl::Seconds(cli.reconnect_window_s);
  options.hang_timeout = absl::Seconds(cli.hang_timeout_s);
  options.max_restarts = cli.max_restarts;
  options.metrics_port = cli.metrics_port;
  options.master_addr = cli.master_addr;
  options.master_port = cli.master_port;
  options.no_local_rank = cli.no_local_rank;
  BlockStopSignals();  // Before any thread exists: the job's signal thread handles them.
  std::unique_ptr<LaunchBackend> backend = MakeBackend(cli);
  if (backend == nullptr) return kExitUsage;
  if (absl::Status s = backend->Prepare(&options.preflight); !s.ok()) {
    std::cerr << "zerorun: " << s.message() << "\n";
    return LaunchBackendExit(s);
  }
  options.agent_secret = backend->agent_secret();
  return RunJob(options, backend->agents(), std::cout, std::cerr);
}

int RunEstimateCommand(const Cli& cli, bool hostfile_set) {
  double params = 0, largest = 0;
  ParseCount(cli.params, &params);
  ParseCount(cli.largest_layer, &largest);
  int nodes = cli.nodes, gpus = cli.gpus_per_node;
  if (hostfile_set) {
    absl::StatusOr<Hostfile> hostfile = LoadHostfile(cli.hostfile);
    if (!hostfile.ok()) {
      std::cerr << "zerorun estimate: " << hostfile.status().message() << "\n";
      return hostfile.status().code() == absl::StatusCode::kNotFound ? kExitNoInput : kExitDataErr;
    }
    absl::StatusOr<ResourcePlan> plan = ApplyFilter(*hostfile, cli.filter);
    if (!plan.ok()) {
      std::cerr << "zerorun estimate: " << plan.status().message() << "\n";
      return plan.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitConfig;
    }
    nodes = static_cast<int>(plan->hosts.size());
    gpus = static_cast<int>(plan->hosts.front().slots.size());
    for (const Host& host : plan->hosts) {
      if (static_cast<int>(host.slots.size()) != gpus) {
        std::cerr << "zerorun estimate: note: hosts have different slot counts; DeepSpeed's "
                     "estimator assumes "
                  << gpus << " GPUs per node (the first host's)\n";
        break;
      }
    }
  }
  std::cout << FormatZero2Table(params, gpus, nodes) << "\n"
            << FormatZero3Table(params, largest, gpus, nodes) << "\n"
            << FormatStageAdvice(params, largest, gpus, nodes,
                                 cli.gpu_memory_gib * 1024.0 * 1024 * 1024);
  if (largest == 0) {
    std::cout << "note: --largest-layer-params not given; ZeRO-3 rows assume 0 (DeepSpeed "
                 "needs the largest layer's parameter count for them)\n";
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  // `zerorun --hostfile H ... train_bin` means `zerorun run ...`, as with deepspeed.
  std::vector<char*> args(argv, argv + argc);
  static char kRun[] = "run";
  if (argc > 1) {
    const std::string first = argv[1];
    const std::vector<std::string>& known = Subcommands();
    if (std::find(known.begin(), known.end(), first) == known.end() && first != "--help" &&
        first != "-h" && first != "--version") {
      if (std::optional<std::string> usage = NotAProgram(first); usage.has_value()) {
        std::cerr << *usage << "\n";
        return kExitUsage;
      }
      args.insert(args.begin() + 1, kRun);
    }
  }
  argc = static_cast<int>(args.size());
  argv = args.data();
  CLI::App app{
      "zerorun: launch and check multi-node ZeRO training jobs with DeepSpeed's hostfiles and "
      "configs.\n\nExamples:\n"
      "  zerorun --hostfile hosts --config ds_config.json train_bin [args...]\n"
      "  zerorun preflight --hostfile hostfiles/local-cpu.txt --config "
      "hostfiles/ds_zero2_cpu.json --device cpu\n"
      "  zerorun status [JOB] [--json] [--watch]     zerorun stop JOB\n"
      "  zerorun estimate --params 7B --largest-layer-params 131M --nodes 2 --gpus-per-node 8\n"
      "  zerorun cluster init DIR --node HOST... --user NAME...   (mTLS certificates)\n"};
  app.set_version_flag("--version", ZR_VERSION);
  app.require_subcommand(0, 1);
  Cli cli;

  CLI::App* run =
      app.add_subcommand("run", "Check, then launch a job on every node (the default subcommand)");
  CLI::App* preflight =
      app.add_subcommand("preflight", "Check a job on every node without starting anything");
  for (CLI::App* sub : {run, preflight}) {
    AddHostOptions(sub, &cli);
    AddPreflightOptions(sub, &cli);
    sub->prefix_command();  // train_bin and everything after it belong to the job.
    sub->footer(
        "Exit codes: 0 ok, 1 a rank failed, 2 usage, 65 bad data, 66 missing file, 69 CRITICAL "
        "node check or node unreachable, 77 secret refused, 78 inconsistent configuration, "
        "128+N a rank died of signal N, 200 node lost.");
  }
  preflight->add_flag("--json", cli.json, "Print one JSON object instead of the table");
  preflight->add_flag("--print-config,--print_config", cli.print_config,
                      "Also print the effective config with defaults resolved");
  run->add_option("--job-id,--job_id", cli.job_id, "Job id (default zr-<date>-<time>-<random>)");
  run->add_option("--log-dir,--log_dir,--enable_each_rank_log", cli.log_dir,
                  "Per-rank logs: <dir>/rank_<N>/{stdout,stderr}.log on each node (default: the "
                  "agent's job directory under $ZR_HOME/agent)");
  run->add_option("--ranks,--local-ranks-filter", cli.console_ranks,
                  "Show only these ranks' output on the console, e.g. 0,3")
      ->delimiter(',')
      ->allow_extra_args(false);  // One value per flag: never swallow train_bin.
  run->add_option("--grace-period,--grace_period", cli.grace_s,
                  "Seconds between SIGTERM and SIGKILL when stopping (default 10)");
  run->add_option("--heartbeat-timeout", cli.heartbeat_timeout_s,
                  "Seconds without a heartbeat before a rank shows as stale (default 30)");
  run->add_option("--lease", cli.lease_s,
                  "Seconds a node's ranks outlive this launcher (killed, or its host gone) before "
                  "the node ends them (default 10)")
      ->check(CLI::Range(1.0, 86400.0));
  run->add_option("--node-timeout", cli.node_timeout_s,
                  "Seconds without word from a node (frozen, partitioned) before the job ends "
                  "with exit 200 (default 9: heartbeats come every second, so detection <= 10 s)")
      ->check(CLI::Range(2.0, 86400.0));
  run->add_option("--reconnect-window", cli.reconnect_window_s,
                  "Seconds a node's restarting zerorund has to come back before the job ends "
                  "with exit 200 (default 30)")
      ->check(CLI::Range(0.0, 86400.0));
  run->add_option("--hang-timeout", cli.hang_timeout_s,
                  "Seconds a reporting rank may go without heartbeat or step progress before "
                  "the job ends with exit 201 (default 0: off)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--max-restarts,--max_restarts", cli.max_restarts,
                  "Restart the whole job up to N times after a rank fails or hangs; the program "
                  "resumes from its latest checkpoint (ZERORUN_RESTART_COUNT; default 0)")
      ->check(CLI::Range(0, 1000));
  run->add_option("--metrics-port,--metrics_port", cli.metrics_port,
                  "Serve Prometheus metrics at http://HOST:PORT/metrics while the job runs (0: "
                  "any free port; default off)")
      ->check(CLI::Range(0, 65535));
  run->add_option("--master_addr,--master-addr", cli.master_addr,
                  "MASTER_ADDR for the ranks (default: the first host's address)");
  run->add_option("--master_port,--master-port", cli.master_port, "MASTER_PORT (default 29500)");
  run->add_flag("--no_local_rank,--no-local-rank", cli.no_local_rank,
                "Do not append --local_rank=N to the program's arguments");

  CLI::App* status = app.add_subcommand("status", "Show a running (or finished) job");
  status->add_option("job", cli.job_id, "Job id (default: the only running job)");
  status->add_flag("--json", cli.json, "JSON instead of the table");
  status->add_flag("--watch", cli.watch, "Refresh every second until the job ends");
  AddAuthOptions(status, &cli);
  CLI::App* jobs = app.add_subcommand("jobs", "List the jobs recorded here, newest first");
  int jobs_limit = 20;
  jobs->add_flag("--json", cli.json, "JSON instead of the table");
  jobs->add_option("--limit", jobs_limit, "At most this many (0: all)")->capture_default_str();
  status->add_flag("--all", cli.all_jobs, "List recent jobs with their end state (zerorun jobs)");
  CLI::App* logs = app.add_subcommand("logs", "Print a job's rank logs from every node");
  logs->add_option("job", cli.job_id, "Job id")->required();
  logs->add_option("--rank", cli.log_ranks, "Only this rank (repeatable)")->allow_extra_args(false);
  logs->add_flag("-f,--follow", cli.follow, "Keep printing as the ranks write, until they exit");
  logs->add_option("--since", cli.since,
                   "Only lines written since: a duration ago (10m, 1h30m) or a UTC time "
                   "(2026-12-02T10:00:00Z)");
  AddAuthOptions(logs, &cli);
  CLI::App* stop = app.add_subcommand("stop", "Stop a running job on every node");
  stop->add_option("job", cli.job_id, "Job id")->required();
  AddAuthOptions(stop, &cli);
  stop->add_option("--signal", cli.signal,
                   "Signal number to send (default: SIGTERM, then "
                   "SIGKILL after the grace period)");
  CLI::App* report = app.add_subcommand(
      "report", "From inside a rank: send a heartbeat or step report to the job's coordinator");
  int64_t step = 0, memory_bytes = 0;
  double loss = 0, tokens_per_second = 0;
  std::string phase;
  report->add_option("--step", step, "Training step just finished");
  report->add_option("--loss", loss, "Loss of that step");
  report->add_option("--tokens-per-second", tokens_per_second, "Throughput");
  report->add_option("--memory-bytes", memory_bytes, "Memory in use");
  report->add_option("--phase", phase, "What the rank is doing, e.g. forward");
  int64_t total_steps = 0;
  report->add_option("--total-steps", total_steps, "Steps the run will take (progress and ETA)");

  CLI::App* ckpt =
      app.add_subcommand("ckpt", "Checkpoint tools: inspect, verify, consolidate, import");
  ckpt->require_subcommand(1);
  std::string ckpt_dir;
  CLI::App* inspect = ckpt->add_subcommand("inspect", "Summarize a checkpoint's manifest");
  inspect->add_option("dir", ckpt_dir, "Save directory (its latest) or a tag directory")
      ->required();
  CLI::App* verify = ckpt->add_subcommand(
      "verify", "Check every shard's size and sha256 against the manifest (exit 65 if corrupt)");
  verify->add_option("dir", ckpt_dir, "Save directory (its latest) or a tag directory")->required();
  std::string ckpt_out, ckpt_dtype = "fp32";
  CLI::App* consolidate = ckpt->add_subcommand(
      "consolidate", "Write the full fp32 (or bf16) weights as one safetensors file");
  consolidate->add_option("dir", ckpt_dir, "Save directory (its latest) or a tag directory")
      ->required();
  consolidate->add_option("--out", ckpt_out, "The .safetensors file to write")->required();
  consolidate->add_option("--dtype", ckpt_dtype,
                          "fp32 (default) or bf16 (rounded to nearest even)");
  std::string ckpt_file, ckpt_tag = "imported", ckpt_python = "python3";
  CLI::App* import = ckpt->add_subcommand(
      "import",
      "Make a checkpoint to train from: initial weights from a safetensors file (F32/BF16/F16), "
      "or a DeepSpeed ZeRO checkpoint directory with Adam's state and step");
  import->add_option("source", ckpt_file, "The .safetensors file or DeepSpeed checkpoint dir")
      ->required();
  import->add_option("--out", ckpt_out, "The save directory to create it in")->required();
  import->add_option("--tag", ckpt_tag, "Its tag (default imported)");
  import->add_option("--python", ckpt_python,
                     "Interpreter with torch and zerorun that reads a DeepSpeed checkpoint "
                     "(default python3 from $PATH)");

  ClusterCli cluster;
  AddClusterCommands(&app, &cluster);

  CLI::App* estimate = app.add_subcommand(
      "estimate", "Print DeepSpeed's ZeRO-2 and ZeRO-3 model-state memory tables");
  AddHostOptions(estimate, &cli);
  estimate->add_option("--params", cli.params, "Total parameters (7e9, 7B, 350M)")
      ->required()
      ->check(CountValidator());
  estimate
      ->add_option("--largest-layer-params,--largest_layer_params", cli.largest_layer,
                   "Largest single layer's parameters (ZeRO-3)")
      ->check(CountValidator());
  estimate->add_option("--nodes", cli.nodes, "Number of nodes (without --hostfile)")
      ->check(CLI::PositiveNumber);
  estimate
      ->add_option("--gpus-per-node,--gpus_per_node", cli.gpus_per_node,
                   "GPUs per node (without --hostfile)")
      ->check(CLI::PositiveNumber);
  estimate
      ->add_option("--gpu-memory-gib,--gpu_memory_gib", cli.gpu_memory_gib,
                   "Memory of one GPU in GiB: say which stage (and offload) fits")
      ->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  int exit_code = kExitOk;
  if ((run->parsed() || preflight->parsed()) && !ResolveAuth(&cli, &exit_code)) return exit_code;
  if (preflight->parsed()) {
    return RunPreflightCommand(cli, preflight);
  }
  if (run->parsed()) return RunJobCommand(cli, run);
  if (status->parsed() || stop->parsed() || logs->parsed()) {
    int exit_code = kExitOk;
    if (!ResolveAuth(&cli, &exit_code)) return exit_code;
  }
  if (jobs->parsed() || (status->parsed() && cli.all_jobs)) {
    return JobsCommand(cli.json, jobs->parsed() ? jobs_limit : 20, std::cout);
  }
  if (status->parsed()) {
    return StatusCommand(cli.job_id, cli.json, cli.watch, cli.auth, std::cout, std::cerr);
  }
  if (stop->parsed()) return StopCommand(cli.job_id, cli.signal, cli.auth, std::cerr);
  if (logs->parsed()) {
    int64_t since_ms = 0;
    if (logs->count("--since") > 0) {
      absl::StatusOr<int64_t> since = ParseSince(cli.since, absl::Now());
      if (!since.ok()) {
        std::cerr << "zerorun logs: " << since.status().message() << "\n";
        return kExitUsage;
      }
      since_ms = *since;
    }
    return LogsCommand(cli.job_id, cli.log_ranks, cli.follow, since_ms, cli.auth, std::cout,
                       std::cerr);
  }
  if (report->parsed()) {
    cli.report.set_has_step(report->count("--step") > 0);
    cli.report.set_step(step);
    cli.report.set_loss(loss);
    cli.report.set_tokens_per_second(tokens_per_second);
    cli.report.set_memory_bytes(memory_bytes);
    cli.report.set_phase(phase);
    cli.report.set_total_steps(total_steps);
    return ReportCommand(cli.report, std::cerr);
  }
  if (inspect->parsed()) return CkptInspectCommand(ckpt_dir, std::cout, std::cerr);
  if (verify->parsed()) return CkptVerifyCommand(ckpt_dir, std::cout, std::cerr);
  if (consolidate->parsed()) {
    return CkptConsolidateCommand(ckpt_dir, ckpt_out, ckpt_dtype, std::cout, std::cerr);
  }
  if (import->parsed()) {
    return CkptImportCommand(ckpt_file, ckpt_out, ckpt_tag, ckpt_python, std::cout, std::cerr);
  }
  if (const int code = RunClusterCommand(cluster, std::cout, std::cerr); code >= 0) return code;
  if (estimate->parsed()) return RunEstimateCommand(cli, estimate->count("--hostfile") > 0);
  std::cerr << "zerorun: nothing to do. Run 'zerorun --help' for usage.\n";
  return kExitUsage;
}

}  // namespace
}  // namespace zerorun::launcher

int main(int argc, char** argv) {
  // The embedded agent re-executes this binary as each local rank's supervisor.
  if (const int code = zerorun::worker::MaybeRunRankSupervisor(argc, argv); code >= 0) return code;
  return zerorun::launcher::Main(argc, argv);
}
