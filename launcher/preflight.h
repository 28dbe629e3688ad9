// `zerorun preflight`: every check that can run before launch (hostfile, filter, config, "auto"
// values, batch arithmetic, memory estimate, and each node's agent probe) gathered into one
// report with the exit code it implies.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent_client.h"
#include "dsconfig/auto_values.h"
#include "dsconfig/batch.h"
#include "forwarded_env.h"
#include "hostfile.h"
#include "nlohmann/json.hpp"
#include "node_agent.h"
#include "resource_filter.h"
#include "train_command.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::launcher {

using dsconfig::AutoInputs;
using dsconfig::AutoValue;
using dsconfig::BatchTriple;

// DeepSpeed's default hostfile, used when --hostfile is not given and it exists.
inline constexpr char kDefaultHostfile[] = "/job/hostfile";

struct AgentEndpoint {
  std::string address;
  int port = 0;
};

struct PreflightOptions {
  std::optional<std::string> hostfile;  // Unset: /job/hostfile if present, else this machine.
  std::string default_hostfile = kDefaultHostfile;
  std::string config;  // Empty: taken from --deepspeed_config/--deepspeed in
                       // the train arguments, as HF and DeepSpeed scripts pass it.
  FilterOptions filter;
  v1::Device device = v1::DEVICE_GPU;
  AutoInputs autos;              // Flags only; train_args and world_size are filled in.
  std::optional<double> params;  // Model parameters, for memory and swap estimates.
  std::optional<double> largest_layer_params;
  std::vector<std::string> checkpoint_dirs;
  TrainCommand command;              // program empty: no train_bin given.
  ForwardedEnv env;                  // What every rank on every node gets (forwarded_env.h).
  bool strict = false;               // Unresolved "auto" is an error (78).
  std::string engine = "deepspeed";  // --engine: deepspeed or zerorun (train_command.h).
  const char* cuda_visible_devices = nullptr;  // The environment's value, or nullptr.
  // Set by a backend that started the agents itself (--launcher ssh): host name -> where its
  // agent serves, instead of the hostfile's address and agent_port. A host without one is a
  // critical row (69).
  std::map<std::string, AgentEndpoint> agent_endpoints;
};

// The hostfile a run reads: --hostfile, else the default one if it exists; "" for none.
std::string HostfilePath(const PreflightOptions& options);

struct PreflightReport {
  std::string hostfile_path;  // Empty for this machine alone.
  std::string config_path;
  std::vector<Host> hosts;  // Node-rank order, with the slots the job uses.
  int world_size = 0;       // 0 when the hostfile or filter failed.
  std::optional<BatchTriple> batch;
  std::vector<AutoValue> autos;
  // DeepSpeed defaults filled, "auto" resolved where possible, the batch triple written once it
  // resolves: what the ranks get as ZERORUN_CONFIG. Null when the config could not be read.
  nlohmann::json effective_config;
  std::vector<v1::Check> checks;
  std::vector<v1::ProbeReply> probes;  // One per probed node, in node-rank order.
  int exit_code = 0;                   // 0 ok (WARN/UNKNOWN allowed), else 2, 66, 65, 78 or 69.
  bool ok() const { return exit_code == 0; }
};

// Runs every check, probing all nodes in parallel through `agents` (in-process for this
// machine, zerorund elsewhere); never throws or exits. Nothing is created or started anywhere.
PreflightReport RunPreflight(const PreflightOptions& options, AgentPool& agents);

// The exit code for a set of rows: the first of 2, 66, 65, 78, 77, 69 that a CRITICAL row
// carries.
int ExitCodeFor(const std::vector<v1::Check>& checks);

// The human table (one row per check, details wrapped under their row) with a summary line.
std::string FormatTable(const PreflightReport& report);

// The --json object: schema_version, ok, exit_code, world_size, hosts, batch, checks, ...
nlohmann::json ReportJson(const PreflightReport& report);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_H_
