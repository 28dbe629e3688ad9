// zerorun's subcommands besides `cluster` (cluster_cli.h): the flags each one takes, in the
// order `zerorun --help` lists them, and running the one that was given. Main (main.cc) adds
// them to one CLI::App, parses, and dispatches; the values land in Cli (cli_options.h) or here.
// Not thread-safe: the main thread builds, parses and runs them.
#ifndef ZERORUN_LAUNCHER_CLI_COMMANDS_H_
#define ZERORUN_LAUNCHER_CLI_COMMANDS_H_

#include <cstdint>
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/cli_options.h"

namespace zerorun::launcher {

// The subcommands' handles (valid as long as the CLI::App they were added to) and the values
// only one subcommand takes.
struct Commands {
  CLI::App* run = nullptr;
  CLI::App* preflight = nullptr;
  CLI::App* status = nullptr;
  CLI::App* jobs = nullptr;
  CLI::App* logs = nullptr;
  CLI::App* stop = nullptr;
  CLI::App* report = nullptr;
  CLI::App* inspect = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* consolidate = nullptr;
  CLI::App* import = nullptr;
  CLI::App* estimate = nullptr;
  int jobs_limit = 20;
  // report
  int64_t step = 0, memory_bytes = 0, total_steps = 0;
  double loss = 0, tokens_per_second = 0;
  std::string phase;
  // ckpt
  std::string ckpt_dir, ckpt_out, ckpt_dtype = "fp32";
  std::string ckpt_file, ckpt_tag = "imported", ckpt_python = "python3";
};

// run and preflight: the job's hosts, config, train command and the run-only flags.
void AddJobCommands(CLI::App* app, Cli* cli, Commands* commands);
// status, jobs, logs, stop, report: a job's tools, from another terminal or inside a rank.
void AddJobToolCommands(CLI::App* app, Cli* cli, Commands* commands);
// ckpt inspect|verify|consolidate|import.
void AddCkptCommands(CLI::App* app, Commands* commands);
// estimate: DeepSpeed's memory tables.
void AddEstimateCommand(CLI::App* app, Cli* cli, Commands* commands);

// Runs the job tool or ckpt subcommand that was parsed: its exit code, or -1 when none was.
int RunToolCommand(Cli* cli, const Commands& commands);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_COMMANDS_H_
