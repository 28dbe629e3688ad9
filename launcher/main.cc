// zerorun: the launcher CLI. Subcommands in this version: preflight (check a job without
// starting it) and estimate (DeepSpeed's memory tables); launching comes with issue #3.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/version.h"
#include "estimate.h"
#include "hostfile.h"
#include "preflight.h"
#include "resource_filter.h"

namespace zerorun::launcher {
namespace {

// "7e9", "7B", "350M", "1.5k" -> a count. Returns false on anything else.
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
  // estimate
  int nodes = 1, gpus_per_node = 1;
};

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

int RunPreflightCommand(const Cli& cli, const std::vector<std::string>& rest, bool hostfile_set) {
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
  options.cuda_visible_devices = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!rest.empty()) {
    options.train_bin = rest[0];
    options.train_args.assign(rest.begin() + 1, rest.end());
  }
  const worker::NodeAgent agent(GetEnv(kEnvNvmlLibrary));
  const PreflightReport report = RunPreflight(options, agent);
  if (cli.json) {
    nlohmann::json out = ReportJson(report);
    if (cli.print_config) out["effective_config"] = report.effective_config;
    std::cout << out.dump(2) << "\n";
  } else {
    if (cli.print_config && !report.effective_config.is_null()) {
      std::cout << "# effective config: " << report.config_path << " with DeepSpeed "
                << ZR_DEEPSPEED_SEMANTICS << " defaults and resolved \"auto\" values\n"
                << report.effective_config.dump(2) << "\n\n";
    }
    std::cout << FormatTable(report);
  }
  return report.exit_code;
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
            << FormatZero3Table(params, largest, gpus, nodes);
  if (largest == 0) {
    std::cout << "note: --largest-layer-params not given; ZeRO-3 rows assume 0 (DeepSpeed "
                 "needs the largest layer's parameter count for them)\n";
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "zerorun: launch and check multi-node ZeRO training jobs with DeepSpeed's hostfiles and "
      "configs.\n\nExamples:\n"
      "  zerorun preflight --hostfile hostfiles/local-cpu.txt --config hostfiles/ds_zero2.json "
      "--device cpu\n"
      "  zerorun estimate --params 7B --largest-layer-params 131M --nodes 2 --gpus-per-node 8\n"};
  app.set_version_flag("--version", ZR_VERSION);
  app.require_subcommand(0, 1);
  Cli cli;

  CLI::App* preflight =
      app.add_subcommand("preflight", "Check a job on every node without starting anything");
  AddHostOptions(preflight, &cli);
  preflight->add_option("--config,--deepspeed_config,--deepspeed-config", cli.config,
                        "DeepSpeed config JSON (default: --deepspeed_config/--deepspeed found in "
                        "the train arguments)");
  preflight->add_option("--device", cli.device, "gpu (one rank per GPU) or cpu (one rank per slot)")
      ->check(CLI::IsMember({"gpu", "cpu"}));
  preflight->add_option("--micro-batch-size,--micro_batch_size", cli.micro_batch,
                        "Fills train_micro_batch_size_per_gpu: \"auto\"");
  preflight->add_option("--gradient-accumulation-steps,--gradient_accumulation_steps",
                        cli.grad_accum, "Fills gradient_accumulation_steps: \"auto\"");
  preflight->add_option("--train-batch-size,--train_batch_size", cli.train_batch,
                        "Fills train_batch_size: \"auto\"");
  preflight->add_option("--hidden-size,--hidden_size", cli.hidden_size,
                        "Model hidden size: fills the ZeRO bucket sizes' \"auto\" as HF does");
  preflight->add_option("--params", cli.params, "Model parameter count (7e9, 7B, 350M)")
      ->check(CountValidator());
  preflight
      ->add_option("--largest-layer-params,--largest_layer_params", cli.largest_layer,
                   "Largest layer's parameter count (ZeRO-3 estimate)")
      ->check(CountValidator());
  preflight->add_option("--checkpoint-dir,--checkpoint_dir", cli.checkpoint_dirs,
                        "Directory checkpoints go to (free space is checked; repeatable)");
  preflight->add_flag("--strict", cli.strict, "An unresolved \"auto\" is an error (exit 78)");
  preflight->add_flag("--json", cli.json, "Print one JSON object instead of the table");
  preflight->add_flag("--print-config,--print_config", cli.print_config,
                      "Also print the effective config with defaults resolved");
  preflight->prefix_command();  // train_bin and everything after it belong to the job.
  preflight->footer(
      "Exit codes: 0 ok, 2 usage, 65 bad data, 66 missing file, 69 CRITICAL node "
      "check, 78 inconsistent configuration.");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (preflight->parsed()) {
    return RunPreflightCommand(cli, preflight->remaining(), preflight->count("--hostfile") > 0);
  }
  if (estimate->parsed()) return RunEstimateCommand(cli, estimate->count("--hostfile") > 0);
  std::cerr << "zerorun: this version checks jobs ('zerorun preflight ...') and estimates memory "
               "('zerorun estimate ...'); launching ('zerorun [run] ...') arrives with issue #3.\n"
               "Run 'zerorun --help' for usage.\n";
  return kExitUsage;
}

}  // namespace
}  // namespace zerorun::launcher

int main(int argc, char** argv) { return zerorun::launcher::Main(argc, argv); }
