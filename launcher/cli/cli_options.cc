// The launcher's flags and what they fill (see cli_options.h).
#include "cli/cli_options.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "cli/cli_words.h"
#include "inputs/forwarded_env.h"
#include "inputs/train_command.h"
#include "security/auth.h"

extern char** environ;

namespace zerorun::launcher {

bool ParseCount(const std::string& text, double* out) {
  if (text.empty()) return false;
  double scale = 1;
  std::string digits = text;
  switch (std::toupper(static_cast<unsigned char>(text.back()))) {
    case 'K':
      scale = 1e3;
      break;
    case 'M':
      scale = 1e6;
      break;
    case 'B':
    case 'G':
      scale = 1e9;
      break;
    case 'T':
      scale = 1e12;
      break;
    default:
      break;
  }
  if (scale != 1) digits.pop_back();
  double value = 0;
  if (!absl::SimpleAtod(digits, &value) || value <= 0) return false;
  *out = value * scale;
  return true;
}

CLI::Validator CountValidator() {
  return CLI::Validator(
      [](std::string& text) {
        double ignored = 0;
        return ParseCount(text, &ignored)
                   ? std::string()
                   : absl::StrCat("'", text, "' is not a parameter count (e.g. 7e9, 7B, 350M)");
      },
      "COUNT");
}

void AddAuthOptions(CLI::App* app, Cli* cli) {
  app->add_option("--secret-file,--secret_file", cli->secret_file,
                  "File whose first line is the cluster secret zerorund expects (or ZR_SECRET)");
  app->add_option("--tls-dir,--tls_dir", cli->tls_dir,
                  "mTLS: a user's directory from `zerorun cluster init` (ca.crt, cert.crt, "
                  "cert.key; or ZR_TLS_DIR)");
}

void AddHostOptions(CLI::App* app, Cli* cli) {
  app->add_option("-H,--hostfile", cli->hostfile,
                  "DeepSpeed/MPI hostfile ('host slots=N') or YAML (hosts: [...]); default "
                  "/job/hostfile if it exists, else this machine alone");
  app->add_option("-i,--include", cli->filter.include,
                  "Use only these: NAME[:SLOT[,SLOT]][@NAME...], e.g. worker-0@worker-1:0,2");
  app->add_option("-e,--exclude", cli->filter.exclude, "Do not use these (same form)");
  app->add_option("--num_nodes,--num-nodes", cli->filter.num_nodes, "Use the first N hosts");
  app->add_option("--num_gpus,--num-gpus,--num_accelerators", cli->filter.num_gpus,
                  "Use slots 0..N-1 on every host");
}

void AddPreflightOptions(CLI::App* app, Cli* cli) {
  app->add_option("--config,--deepspeed_config,--deepspeed-config", cli->config,
                  "DeepSpeed config JSON (default: --deepspeed_config/--deepspeed found in the "
                  "train arguments)");
  app->add_option("--device", cli->device, "gpu (one rank per GPU) or cpu (one rank per slot)")
      ->check(CLI::IsMember({"gpu", "cpu"}));
  app->add_option("--micro-batch-size,--micro_batch_size", cli->micro_batch,
                  "Fills train_micro_batch_size_per_gpu: \"auto\"");
  app->add_option("--gradient-accumulation-steps,--gradient_accumulation_steps", cli->grad_accum,
                  "Fills gradient_accumulation_steps: \"auto\"");
  app->add_option("--train-batch-size,--train_batch_size", cli->train_batch,
                  "Fills train_batch_size: \"auto\"");
  app->add_option("--hidden-size,--hidden_size", cli->hidden_size,
                  "Model hidden size: fills the ZeRO bucket sizes' \"auto\" as HF does");
  app->add_option("--params", cli->params, "Model parameter count (7e9, 7B, 350M)")
      ->check(CountValidator());
  app->add_option("--largest-layer-params,--largest_layer_params", cli->largest_layer,
                  "Largest layer's parameter count (ZeRO-3 estimate)")
      ->check(CountValidator());
  app->add_option("--checkpoint-dir,--checkpoint_dir", cli->checkpoint_dirs,
                  "Directory checkpoints go to (free space is checked; repeatable)")
      ->allow_extra_args(false);  // One value per flag: never swallow train_bin.
  app->add_flag("--strict", cli->strict, "An unresolved \"auto\" is an error (exit 78)");
  app->add_option("--launcher", cli->launcher,
                  "zerorund (default: resident zerorunds, this machine in-process), slurm "
                  "(inside salloc/sbatch: hosts from the allocation, one zerorund per node via "
                  "srun) or ssh (pdsh: one zerorund per hostfile host over ssh)")
      ->check(CLI::Validator(UnknownLaunchBackend, "zerorund|slurm|ssh|pdsh"));
  app->add_option("--ssh_port,--ssh-port", cli->ssh_port,
                  "--launcher ssh: the hosts' ssh port (also PDSH_SSH_ARGS_APPEND's options)")
      ->check(CLI::Range(1, 65535));
  AddAuthOptions(app, cli);
  app->add_flag("--no_python,--no-python", cli->no_python,
                "Execute train_bin directly, even a .py (DeepSpeed's --no_python)");
  app->add_flag("--module", cli->module,
                "train_bin is a Python module: python3 -u -m train_bin (DeepSpeed's --module)");
  app->add_option("--python", cli->python,
                  "Interpreter for .py scripts and --module (default python3 from $PATH)");
  app->add_option("--engine", cli->engine,
                  "deepspeed (default: DeepSpeed's own engine) or zerorun: the same script's "
                  "`import deepspeed` gets zerorun's DeepSpeed-compatible engine (zerorun.torch)")
      ->check(CLI::IsMember({"deepspeed", "zerorun"}));
  app->add_option("--env", cli->env,
                  "Send KEY=VALUE (or KEY, from this environment) to every rank on every node "
                  "(repeatable)")
      ->allow_extra_args(false);
}

std::vector<std::string> FlagNames(const CLI::App* app) {
  std::vector<std::string> names;
  for (const CLI::Option* option : app->get_options()) {
    for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
  }
  return names;
}

PreflightOptions BuildPreflightOptions(const Cli& cli, bool hostfile_set) {
  PreflightOptions options;
  if (hostfile_set) options.hostfile = cli.hostfile;
  options.config = cli.config;
  options.filter = cli.filter;
  options.device = cli.device == "cpu" ? v1::DEVICE_CPU : v1::DEVICE_GPU;
  if (cli.micro_batch > 0) options.autos.micro_batch = cli.micro_batch;
  if (cli.grad_accum > 0) options.autos.grad_accum = cli.grad_accum;
  if (cli.train_batch > 0) options.autos.train_batch = cli.train_batch;
  if (cli.hidden_size > 0) options.autos.hidden_size = cli.hidden_size;
  double count = 0;
  if (ParseCount(cli.params, &count)) options.params = count;
  if (ParseCount(cli.largest_layer, &count)) options.largest_layer_params = count;
  options.checkpoint_dirs = cli.checkpoint_dirs;
  options.strict = cli.strict;
  options.engine = cli.engine;
  options.cuda_visible_devices = std::getenv("CUDA_VISIBLE_DEVICES");
  return options;
}

bool ParseTrainCommand(const Cli& cli, const std::vector<std::string>& rest,
                       const std::vector<std::string>& known_flags, PreflightOptions* options,
                       int* exit_code) {
  std::vector<std::string> job = rest;
  if (!job.empty() && job.front() == "--") {
    job.erase(job.begin());
  } else if (!job.empty() && absl::StartsWith(job.front(), "-")) {
    std::cerr << UnknownFlagMessage(job.front(), known_flags) << "\n";
    *exit_code = kExitUsage;
    return false;
  }
  char cwd[4096] = {};
  const char* home = std::getenv("HOME");
  absl::StatusOr<ForwardedEnv> env =
      CollectForwardedEnv(cli.env, environ, home ? home : "", getcwd(cwd, sizeof(cwd)) ? cwd : ".");
  if (!env.ok()) {
    std::cerr << "zerorun: " << env.status().message() << "\n";
    *exit_code = absl::StartsWith(env.status().message(), "--env") ? kExitUsage : kExitDataErr;
    return false;
  }
  options->env = *std::move(env);
  if (job.empty()) return true;
  TrainCommandOptions how;
  how.no_python = cli.no_python;
  how.module = cli.module;
  how.python = cli.python;
  absl::StatusOr<TrainCommand> command =
      BuildTrainCommand(job[0], std::vector<std::string>(job.begin() + 1, job.end()), how);
  if (command.ok() && cli.engine == kEngineZerorun) {
    absl::Status s = UseZerorunEngine(&*command);
    if (!s.ok()) command = s;
  }
  if (!command.ok()) {
    std::cerr << "zerorun: " << command.status().message() << "\n";
    *exit_code = kExitUsage;
    return false;
  }
  if (cli.engine == kEngineZerorun) {
    options->env.vars[kEnvEngine] = kEngineZerorun;
    options->env.sources[kEnvEngine] = "--engine";
  }
  options->command = *std::move(command);
  return true;
}

bool ResolveAuth(Cli* cli, int* exit_code) {
  const std::string tls_dir = cli->tls_dir.empty() ? GetEnv(kEnvTlsDir) : cli->tls_dir;
  if (!tls_dir.empty()) {
    absl::StatusOr<TlsFiles> files = ReadTlsDir(tls_dir);
    if (!files.ok()) {
      std::cerr << "zerorun: --tls-dir: " << files.status().message() << "\n";
      *exit_code = SecretFileExit(files.status());
      return false;
    }
    cli->auth.tls = *std::move(files);
    return true;
  }
  if (cli->secret_file.empty()) {
    cli->auth.secret = GetEnv(kEnvSecret);
    return true;
  }
  absl::StatusOr<std::string> secret = ReadSecretFile(cli->secret_file);
  if (!secret.ok()) {
    std::cerr << "zerorun: " << secret.status().message() << "\n";
    *exit_code = SecretFileExit(secret.status());
    return false;
  }
  cli->auth.secret = *secret;
  return true;
}

std::unique_ptr<LaunchBackend> MakeBackend(const Cli& cli) {
  LaunchBackendOptions options;
  options.name = cli.launcher;
  options.auth = cli.auth;
  options.ssh_port = cli.ssh_port;
  options.ssh_args = GetEnv(kEnvPdshSshArgs);
  const bool ssh = cli.launcher == "ssh" || cli.launcher == "pdsh";
  if (cli.ssh_port > 0 && !ssh) {
    std::cerr << "zerorun: --ssh_port " << cli.ssh_port << " is for --launcher ssh (or pdsh), and "
              << "the launcher is " << (cli.launcher.empty() ? "zerorund" : cli.launcher)
              << ". Fix: add --launcher ssh, or drop --ssh_port\n";
    return nullptr;
  }
  if (cli.launcher == "pdsh") {
    std::cerr << "zerorun: --launcher pdsh: zerorun starts zerorund over ssh on every host "
                 "itself (no pdsh needed), with PDSH_SSH_ARGS_APPEND's ssh options\n";
  }
  return NewLaunchBackend(options, std::cerr);
}

}  // namespace zerorun::launcher
