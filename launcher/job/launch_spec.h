// The rank environment: global/local rank assignment (host by host in node-rank order, slot
// order within a host) and the variables DeepSpeed, torchrun and zerorun programs read.
#ifndef ZERORUN_LAUNCHER_JOB_LAUNCH_SPEC_H_
#define ZERORUN_LAUNCHER_JOB_LAUNCH_SPEC_H_

#include <string>
#include <vector>

#include "inputs/hostfile.h"
#include "job/endpoints.h"
#include "zerorun/v1/common.pb.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::launcher {

struct LaunchSpec {
  std::string job_id;
  int attempt = 0;  // --max-restarts: the agents run attempt n as AgentJobId(job_id, n).
  int max_restarts = 0;
  // argv = head, then --local_rank=N (unless no_local_rank), then tail (train_command.h).
  std::vector<std::string> head;
  std::vector<std::string> tail;
  v1::Device device = v1::DEVICE_GPU;
  // Per node (node-rank order): ZERORUN_NODE_ADDR, ZERORUN_COORDINATOR and MASTER_ADDR as that
  // node reaches them. Empty: every node is this machine (127.0.0.1, coordinator below).
  std::vector<NodeEndpoints> endpoints;
  std::string master_addr = "127.0.0.1";  // When `endpoints` is empty.
  std::string coordinator;                // host:port, when `endpoints` is empty.
  int master_port = 29500;
  std::string job_secret;
  std::string coordinator_ca;  // ZERORUN_COORDINATOR_CA (PEM); empty: a plaintext coordinator.
  bool no_local_rank = false;  // DeepSpeed's --no_local_rank: do not append --local_rank=N.
  std::string config_json;
  std::vector<std::string> env;  // KEY=VALUE for every rank (forwarded_env.h); rank names win.
  std::string zerorun_bin;       // ZERORUN_BIN: this launcher, for `zerorun report` in ranks.
  std::string log_dir;
  std::string cwd;
  // The launcher's lease on each node's ranks, the node's reconnect window and the SIGTERM ->
  // SIGKILL grace its supervisors use (LaunchRequest); 0: the node's defaults.
  int64_t lease_ms = 0;
  int64_t reconnect_window_ms = 0;
  int64_t grace_ms = 0;
};

// The id the node agents know attempt `attempt` of `job_id` by: the job id itself for the first,
// "<job_id>.restart<n>" after the n-th restart (each attempt has its own logs and events there).
std::string AgentJobId(const std::string& job_id, int attempt);

// One LaunchRequest per host, in node-rank order. Every rank gets RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_SIZE, LOCAL_WORLD_SIZE, NODE_RANK, GROUP_RANK, CROSS_RANK, CROSS_SIZE,
// GROUP_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, ZERORUN_JOB_ID, ZERORUN_COORDINATOR,
// ZERORUN_NODE_ADDR, ZERORUN_JOB_SECRET, ZERORUN_COORDINATOR_CA, ZERORUN_RESTART_COUNT /
// TORCHELASTIC_RESTART_COUNT (the attempt) and ZERORUN_MAX_RESTARTS / TORCHELASTIC_MAX_RESTARTS
// (names: base/rank_env.h); GPU jobs also CUDA_VISIBLE_DEVICES (the host's slots). argv is head,
// then --local_rank=N (unless no_local_rank), then tail, as DeepSpeed does.
std::vector<v1::LaunchRequest> BuildLaunchRequests(const std::vector<Host>& hosts,
                                                   const LaunchSpec& spec);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_LAUNCH_SPEC_H_
