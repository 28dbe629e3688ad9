// The launcher's command line: what zerorun run/preflight take (Cli), the flags that fill it,
// and the options the layers below get from it (pre-flight, auth, the launch backend).
#ifndef ZERORUN_LAUNCHER_CLI_CLI_OPTIONS_H_
#define ZERORUN_LAUNCHER_CLI_CLI_OPTIONS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "backends/launch_backend.h"
#include "inputs/resource_filter.h"
#include "preflight/preflight.h"
#include "security/tls.h"
#include "zerorun/v1/coordinator.pb.h"

namespace zerorun::launcher {

struct Cli {
  // Filter and hostfile (DeepSpeed spellings and dashed forms).
  std::string hostfile;
  FilterOptions filter;
  // preflight
  std::string config;
  std::string device = "gpu";
  int64_t micro_batch = 0, grad_accum = 0, train_batch = 0, hidden_size = 0;
  std::string params, largest_layer;
  std::vector<std::string> checkpoint_dirs;
  bool strict = false, json = false, print_config = false;
  // The train command (DeepSpeed's forms) and what reaches the ranks.
  bool no_python = false, module = false;
  std::string python = "python3";
  std::string engine = "deepspeed";  // --engine: whose ZeRO engine `import deepspeed` gives.
  std::vector<std::string> env;      // --env KEY[=VALUE]
  std::string secret_file, tls_dir;
  std::string launcher;  // --launcher: how the node agents come to exist (launch_backend.h).
  int ssh_port = 0;      // --ssh_port (--launcher ssh).
  ClientAuth auth;       // From --tls-dir / ZR_TLS_DIR (mTLS), else --secret-file / ZR_SECRET.
  // run
  std::string job_id, log_dir, master_addr;
  std::vector<int> console_ranks;
  double grace_s = 10, heartbeat_timeout_s = 30;
  double lease_s = 10, node_timeout_s = 9, reconnect_window_s = 30, hang_timeout_s = 0;
  int max_restarts = 0;
  int metrics_port = -1;
  int master_port = 29500;
  bool no_local_rank = false;
  // status / stop / report
  bool watch = false, all_jobs = false;
  std::vector<int> log_ranks;  // logs --rank
  bool follow = false;
  std::string since;  // logs --since
  int signal = 0;
  v1::RankReport report;
  // estimate
  int nodes = 1, gpus_per_node = 1;
  double gpu_memory_gib = 0;
};

// "7e9", "7B", "350M", "1.5k" -> a count. Returns false on anything else.
bool ParseCount(const std::string& text, double* out);
// CLI11's check for ParseCount's forms.
CLI::Validator CountValidator();

void AddAuthOptions(CLI::App* app, Cli* cli);  // --secret-file, --tls-dir
void AddHostOptions(CLI::App* app, Cli* cli);  // --hostfile and the filter
void AddPreflightOptions(CLI::App* app, Cli* cli);

// Every long flag name of `app`, for did-you-mean.
std::vector<std::string> FlagNames(const CLI::App* app);

PreflightOptions BuildPreflightOptions(const Cli& cli, bool hostfile_set);

// The train command from the words after zerorun's own flags; false with *exit_code set for a
// usage error (an unknown flag before train_bin, --no_python with --module, ...).
bool ParseTrainCommand(const Cli& cli, const std::vector<std::string>& rest,
                       const std::vector<std::string>& known_flags, PreflightOptions* options,
                       int* exit_code);

// How to reach the agents: mTLS with --tls-dir (else ZR_TLS_DIR), else the shared secret of
// --secret-file (else ZR_SECRET). Sets *exit_code on a bad file.
bool ResolveAuth(Cli* cli, int* exit_code);

// The --launcher backend, or nullptr (the usage error printed) for ssh options without ssh.
std::unique_ptr<LaunchBackend> MakeBackend(const Cli& cli);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_CLI_OPTIONS_H_
