// zerorun's subcommands besides `cluster`: their flags and running the one given (commands.h).
#include "cli/commands.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/exit_codes.h"
#include "cli/ckpt_cli.h"
#include "cli/logs_cli.h"
#include "cli/status_cli.h"

namespace zerorun::launcher {

void AddJobCommands(CLI::App* app, Cli* cli, Commands* commands) {
  CLI::App* run = commands->run =
      app->add_subcommand("run", "Check, then launch a job on every node (the default subcommand)");
  CLI::App* preflight = commands->preflight =
      app->add_subcommand("preflight", "Check a job on every node without starting anything");
  for (CLI::App* sub : {run, preflight}) {
    AddHostOptions(sub, cli);
    AddPreflightOptions(sub, cli);
    sub->prefix_command();  // train_bin and everything after it belong to the job.
    sub->footer(
        "Exit codes: 0 ok, 1 a rank failed, 2 usage, 65 bad data, 66 missing file, 69 CRITICAL "
        "node check or node unreachable, 77 secret refused, 78 inconsistent configuration, "
        "128+N a rank died of signal N, 200 node lost.");
  }
  preflight->add_flag("--json", cli->json, "Print one JSON object instead of the table");
  preflight->add_flag("--print-config,--print_config", cli->print_config,
                      "Also print the effective config with defaults resolved");
  run->add_option("--job-id,--job_id", cli->job_id, "Job id (default zr-<date>-<time>-<random>)");
  run->add_option("--log-dir,--log_dir,--enable_each_rank_log", cli->log_dir,
                  "Per-rank logs: <dir>/rank_<N>/{stdout,stderr}.log on each node (default: the "
                  "agent's job directory under $ZR_HOME/agent)");
  run->add_option("--ranks,--local-ranks-filter", cli->console_ranks,
                  "Show only these ranks' output on the console, e.g. 0,3")
      ->delimiter(',')
      ->allow_extra_args(false);  // One value per flag: never swallow train_bin.
  run->add_option("--grace-period,--grace_period", cli->grace_s,
                  "Seconds between SIGTERM and SIGKILL when stopping (default 10)");
  run->add_option("--heartbeat-timeout", cli->heartbeat_timeout_s,
                  "Seconds without a heartbeat before a rank shows as stale (default 30)");
  run->add_option("--lease", cli->lease_s,
                  "Seconds a node's ranks outlive this launcher (killed, or its host gone) before "
                  "the node ends them (default 10)")
      ->check(CLI::Range(1.0, 86400.0));
  run->add_option("--node-timeout", cli->node_timeout_s,
                  "Seconds without word from a node (frozen, partitioned) before the job ends "
                  "with exit 200 (default 9: heartbeats come every second, so detection <= 10 s)")
      ->check(CLI::Range(2.0, 86400.0));
  run->add_option("--reconnect-window", cli->reconnect_window_s,
                  "Seconds a node's restarting zerorund has to come back before the job ends "
                  "with exit 200 (default 30)")
      ->check(CLI::Range(0.0, 86400.0));
  run->add_option("--hang-timeout", cli->hang_timeout_s,
                  "Seconds a reporting rank may go without heartbeat or step progress before "
                  "the job ends with exit 201 (default 0: off)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--max-restarts,--max_restarts", cli->max_restarts,
                  "Restart the whole job up to N times after a rank fails or hangs; the program "
                  "resumes from its latest checkpoint (ZERORUN_RESTART_COUNT; default 0)")
      ->check(CLI::Range(0, 1000));
  run->add_option("--metrics-port,--metrics_port", cli->metrics_port,
                  "Serve Prometheus metrics at http://HOST:PORT/metrics while the job runs (0: "
                  "any free port; default off)")
      ->check(CLI::Range(0, 65535));
  run->add_option("--master_addr,--master-addr", cli->master_addr,
                  "MASTER_ADDR for the ranks (default: the first host's address)");
  run->add_option("--master_port,--master-port", cli->master_port, "MASTER_PORT (default 29500)");
  run->add_flag("--no_local_rank,--no-local-rank", cli->no_local_rank,
                "Do not append --local_rank=N to the program's arguments");
}

void AddJobToolCommands(CLI::App* app, Cli* cli, Commands* commands) {
  CLI::App* status = commands->status =
      app->add_subcommand("status", "Show a running (or finished) job");
  status->add_option("job", cli->job_id, "Job id (default: the only running job)");
  status->add_flag("--json", cli->json, "JSON instead of the table");
  status->add_flag("--watch", cli->watch, "Refresh every second until the job ends");
  AddAuthOptions(status, cli);
  CLI::App* jobs = commands->jobs =
      app->add_subcommand("jobs", "List the jobs recorded here, newest first");
  jobs->add_flag("--json", cli->json, "JSON instead of the table");
  jobs->add_option("--limit", commands->jobs_limit, "At most this many (0: all)")
      ->capture_default_str();
  status->add_flag("--all", cli->all_jobs, "List recent jobs with their end state (zerorun jobs)");
  CLI::App* logs = commands->logs =
      app->add_subcommand("logs", "Print a job's rank logs from every node");
  logs->add_option("job", cli->job_id, "Job id")->required();
  logs->add_option("--rank", cli->log_ranks, "Only this rank (repeatable)")
      ->allow_extra_args(false);
  logs->add_flag("-f,--follow", cli->follow, "Keep printing as the ranks write, until they exit");
  logs->add_option("--since", cli->since,
                   "Only lines written since: a duration ago (10m, 1h30m) or a UTC time "
                   "(2026-12-02T10:00:00Z)");
  AddAuthOptions(logs, cli);
  CLI::App* stop = commands->stop = app->add_subcommand("stop", "Stop a running job on every node");
  stop->add_option("job", cli->job_id, "Job id")->required();
  AddAuthOptions(stop, cli);
  stop->add_option("--signal", cli->signal,
                   "Signal number to send (default: SIGTERM, then "
                   "SIGKILL after the grace period)");
  CLI::App* report = commands->report = app->add_subcommand(
      "report", "From inside a rank: send a heartbeat or step report to the job's coordinator");
  report->add_option("--step", commands->step, "Training step just finished");
  report->add_option("--loss", commands->loss, "Loss of that step");
  report->add_option("--tokens-per-second", commands->tokens_per_second, "Throughput");
  report->add_option("--memory-bytes", commands->memory_bytes, "Memory in use");
  report->add_option("--phase", commands->phase, "What the rank is doing, e.g. forward");
  report->add_option("--total-steps", commands->total_steps,
                     "Steps the run will take (progress and ETA)");
}

void AddCkptCommands(CLI::App* app, Commands* commands) {
  CLI::App* ckpt =
      app->add_subcommand("ckpt", "Checkpoint tools: inspect, verify, consolidate, import");
  ckpt->require_subcommand(1);
  CLI::App* inspect = commands->inspect =
      ckpt->add_subcommand("inspect", "Summarize a checkpoint's manifest");
  inspect->add_option("dir", commands->ckpt_dir, "Save directory (its latest) or a tag directory")
      ->required();
  CLI::App* verify = commands->verify = ckpt->add_subcommand(
      "verify", "Check every shard's size and sha256 against the manifest (exit 65 if corrupt)");
  verify->add_option("dir", commands->ckpt_dir, "Save directory (its latest) or a tag directory")
      ->required();
  CLI::App* consolidate = commands->consolidate = ckpt->add_subcommand(
      "consolidate", "Write the full fp32 (or bf16) weights as one safetensors file");
  consolidate
      ->add_option("dir", commands->ckpt_dir, "Save directory (its latest) or a tag directory")
      ->required();
  consolidate->add_option("--out", commands->ckpt_out, "The .safetensors file to write")
      ->required();
  consolidate->add_option("--dtype", commands->ckpt_dtype,
                          "fp32 (default) or bf16 (rounded to nearest even)");
  CLI::App* import = commands->import = ckpt->add_subcommand(
      "import",
      "Make a checkpoint to train from: initial weights from a safetensors file (F32/BF16/F16), "
      "or a DeepSpeed ZeRO checkpoint directory with Adam's state and step");
  import
      ->add_option("source", commands->ckpt_file,
                   "The .safetensors file or DeepSpeed checkpoint dir")
      ->required();
  import->add_option("--out", commands->ckpt_out, "The save directory to create it in")->required();
  import->add_option("--tag", commands->ckpt_tag, "Its tag (default imported)");
  import->add_option("--python", commands->ckpt_python,
                     "Interpreter with torch and zerorun that reads a DeepSpeed checkpoint "
                     "(default python3 from $PATH)");
}

void AddEstimateCommand(CLI::App* app, Cli* cli, Commands* commands) {
  CLI::App* estimate = commands->estimate = app->add_subcommand(
      "estimate", "Print DeepSpeed's ZeRO-2 and ZeRO-3 model-state memory tables");
  AddHostOptions(estimate, cli);
  estimate->add_option("--params", cli->params, "Total parameters (7e9, 7B, 350M)")
      ->required()
      ->check(CountValidator());
  estimate
      ->add_option("--largest-layer-params,--largest_layer_params", cli->largest_layer,
                   "Largest single layer's parameters (ZeRO-3)")
      ->check(CountValidator());
  estimate->add_option("--nodes", cli->nodes, "Number of nodes (without --hostfile)")
      ->check(CLI::PositiveNumber);
  estimate
      ->add_option("--gpus-per-node,--gpus_per_node", cli->gpus_per_node,
                   "GPUs per node (without --hostfile)")
      ->check(CLI::PositiveNumber);
  estimate
      ->add_option("--gpu-memory-gib,--gpu_memory_gib", cli->gpu_memory_gib,
                   "Memory of one GPU in GiB: say which stage (and offload) fits")
      ->check(CLI::PositiveNumber);
}

int RunToolCommand(Cli* cli, const Commands& commands) {
  if (commands.status->parsed() || commands.stop->parsed() || commands.logs->parsed()) {
    int exit_code = kExitOk;
    if (!ResolveAuth(cli, &exit_code)) return exit_code;
  }
  if (commands.jobs->parsed() || (commands.status->parsed() && cli->all_jobs)) {
    return JobsCommand(cli->json, commands.jobs->parsed() ? commands.jobs_limit : 20, std::cout);
  }
  if (commands.status->parsed()) {
    return StatusCommand(cli->job_id, cli->json, cli->watch, cli->auth, std::cout, std::cerr);
  }
  if (commands.stop->parsed()) return StopCommand(cli->job_id, cli->signal, cli->auth, std::cerr);
  if (commands.logs->parsed()) {
    int64_t since_ms = 0;
    if (commands.logs->count("--since") > 0) {
      absl::StatusOr<int64_t> since = ParseSince(cli->since, absl::Now());
      if (!since.ok()) {
        std::cerr << "zerorun logs: " << since.status().message() << "\n";
        return kExitUsage;
      }
      since_ms = *since;
    }
    return LogsCommand(cli->job_id, cli->log_ranks, cli->follow, since_ms, cli->auth, std::cout,
                       std::cerr);
  }
  if (commands.report->parsed()) {
    cli->report.set_has_step(commands.report->count("--step") > 0);
    cli->report.set_step(commands.step);
    cli->report.set_loss(commands.loss);
    cli->report.set_tokens_per_second(commands.tokens_per_second);
    cli->report.set_memory_bytes(commands.memory_bytes);
    cli->report.set_phase(commands.phase);
    cli->report.set_total_steps(commands.total_steps);
    return ReportCommand(cli->report, std::cerr);
  }
  if (commands.inspect->parsed())
    return CkptInspectCommand(commands.ckpt_dir, std::cout, std::cerr);
  if (commands.verify->parsed()) return CkptVerifyCommand(commands.ckpt_dir, std::cout, std::cerr);
  if (commands.consolidate->parsed()) {
    return CkptConsolidateCommand(commands.ckpt_dir, commands.ckpt_out, commands.ckpt_dtype,
                                  std::cout, std::cerr);
  }
  if (commands.import->parsed()) {
    return CkptImportCommand(commands.ckpt_file, commands.ckpt_out, commands.ckpt_tag,
                             commands.ckpt_python, std::cout, std::cerr);
  }
  return -1;
}

}  // namespace zerorun::launcher
