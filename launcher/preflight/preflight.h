// `zerorun preflight`: every check that can run before launch (hostfile, filter, config, "auto"
// values, batch arithmetic, memory estimate, and each node's agent probe) gathered into one
// report with the exit code it implies.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_PREFLIGHT_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_PREFLIGHT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/agent_client.h"
#include "dsconfig/batch.h"
#include "inputs/preflight_options.h"
#include "nlohmann/json.hpp"
#include "node_agent.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::launcher {

using dsconfig::BatchTriple;

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

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_PREFLIGHT_H_
