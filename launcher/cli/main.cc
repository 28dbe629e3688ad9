// zerorun: the launcher CLI. Main reads as the steps it takes: the implicit `run`, the
// subcommands (commands.h, cluster_cli.h), parsing, and the one given run (Dispatch).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "backends/launch_backend.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/version.h"
#include "cgroup.h"
#include "cli/cli_options.h"
#include "cli/cli_words.h"
#include "cli/cluster_cli.h"
#include "cli/commands.h"
#include "dsconfig/config_json.h"
#include "inputs/forwarded_env.h"
#include "inputs/hostfile.h"
#include "inputs/resource_filter.h"
#include "inputs/train_command.h"
#include "job/job.h"
#include "job/lost_jobs.h"
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
  // Beside this job: records how the jobs of dead launchers here ended (job/lost_jobs.h).
  std::thread lost_jobs([&cli] { RecordLostJobs(cli.auth); });
  const int code = RunJob(options, backend->agents(), std::cout, std::cerr);
  lost_jobs.join();
  return code;
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

// `zerorun --hostfile H ... train_bin` means `zerorun run ...`, as with deepspeed: `args` gets
// argv with "run" put in; a first word that is neither a subcommand nor a program is a usage
// error (its message printed, kExitUsage returned).
std::optional<int> WithImplicitRun(int argc, char** argv, std::vector<char*>* args) {
  static char kRun[] = "run";
  args->assign(argv, argv + argc);
  if (argc <= 1) return std::nullopt;
  const std::string first = argv[1];
  const std::vector<std::string>& known = Subcommands();
  if (std::find(known.begin(), known.end(), first) != known.end() || first == "--help" ||
      first == "-h" || first == "--version") {
    return std::nullopt;
  }
  if (std::optional<std::string> usage = NotAProgram(first); usage.has_value()) {
    std::cerr << *usage << "\n";
    return kExitUsage;
  }
  args->insert(args->begin() + 1, kRun);
  return std::nullopt;
}

constexpr char kAbout[] =
    "zerorun: launch and check multi-node ZeRO training jobs with DeepSpeed's hostfiles and "
    "configs.\n\nExamples:\n"
    "  zerorun --hostfile hosts --config ds_config.json train_bin [args...]\n"
    "  zerorun preflight --hostfile hostfiles/local-cpu.txt --config "
    "hostfiles/ds_zero2_cpu.json --device cpu\n"
    "  zerorun status [JOB] [--json] [--watch]     zerorun stop JOB\n"
    "  zerorun estimate --params 7B --largest-layer-params 131M --nodes 2 --gpus-per-node 8\n"
    "  zerorun cluster init DIR --node HOST... --user NAME...   (mTLS certificates)\n";

// Runs the subcommand that was parsed.
int Dispatch(Cli* cli, const Commands& commands, const ClusterCli& cluster) {
  const bool job = commands.run->parsed() || commands.preflight->parsed();
  int exit_code = kExitOk;
  if (job && !ResolveAuth(cli, &exit_code)) return exit_code;
  if (commands.preflight->parsed()) return RunPreflightCommand(*cli, commands.preflight);
  if (commands.run->parsed()) return RunJobCommand(*cli, commands.run);
  if (const int code = RunToolCommand(cli, commands); code >= 0) return code;
  if (const int code = RunClusterCommand(cluster, std::cout, std::cerr); code >= 0) return code;
  if (commands.estimate->parsed()) {
    return RunEstimateCommand(*cli, commands.estimate->count("--hostfile") > 0);
  }
  std::cerr << "zerorun: nothing to do. Run 'zerorun --help' for usage.\n";
  return kExitUsage;
}

int Main(int argc, char** argv) {
  std::vector<char*> args;
  if (const std::optional<int> usage = WithImplicitRun(argc, argv, &args)) return *usage;
  CLI::App app{kAbout};
  app.set_version_flag("--version", ZR_VERSION);
  app.require_subcommand(0, 1);
  Cli cli;
  Commands commands;
  ClusterCli cluster;
  AddJobCommands(&app, &cli, &commands);
  AddJobToolCommands(&app, &cli, &commands);
  AddCkptCommands(&app, &commands);
  AddClusterCommands(&app, &cluster);
  AddEstimateCommand(&app, &cli, &commands);
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  return Dispatch(&cli, commands, cluster);
}

}  // namespace
}  // namespace zerorun::launcher

int main(int argc, char** argv) {
  // The embedded agent re-executes this binary as each local rank's supervisor.
  if (const int code = zerorun::worker::MaybeRunRankSupervisor(argc, argv); code >= 0) return code;
  return zerorun::launcher::Main(argc, argv);
}
