// The launch-backend seam: how a job's node agents come to exist. "zerorund" (the default):
// resident zerorunds, and the embedded agent for this machine; "slurm": one ephemeral zerorund
// per node of the Slurm allocation, started with one srun step, ended with it; "ssh" (and
// DeepSpeed's "pdsh"): one ephemeral zerorund per hostfile host over ssh, ended with its
// session. Pre-flight, the coordinator, failure propagation and status are the same for all.
#ifndef ZERORUN_LAUNCHER_BACKENDS_LAUNCH_BACKEND_H_
#define ZERORUN_LAUNCHER_BACKENDS_LAUNCH_BACKEND_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backends/agent_client.h"
#include "backends/slurm.h"
#include "inputs/preflight_options.h"

namespace zerorun::launcher {

// The names --launcher takes.
const std::vector<std::string>& LaunchBackendNames();

class LaunchBackend {
 public:
  virtual ~LaunchBackend() = default;  // Ends what Prepare started (ephemeral agents).
  // Brings the node agents up; a backend that makes the host list points options->hostfile at
  // it. Errors name the node or the variable at fault.
  virtual absl::Status Prepare(PreflightOptions* options) = 0;
  // The agents of the job's hosts.
  virtual AgentPool& agents() = 0;
  // The secret of the agents this backend started (ssh, slurm), for the job's record; empty
  // for resident agents (reached with the user's own credentials).
  virtual std::string agent_secret() const { return ""; }
};

// "" when `name` is one of LaunchBackendNames(), else the usage error to print.
std::string UnknownLaunchBackend(const std::string& name);

struct LaunchBackendOptions {
  std::string name;      // One of LaunchBackendNames(); "" is zerorund.
  ClientAuth auth;       // How clients authenticate to resident zerorunds (an ephemeral backend
                         // makes its own per-job secret).
  int ssh_port = 0;      // ssh: --ssh_port (0: ssh's own default).
  std::string ssh_args;  // ssh: PDSH_SSH_ARGS_APPEND's value, DeepSpeed's ssh options.
};

// The backend `options.name`. Notices go to `err`.
std::unique_ptr<LaunchBackend> NewLaunchBackend(const LaunchBackendOptions& options,
                                                std::ostream& err);

// zerorun's exit code for a Prepare error: 2 for how zerorun was called (not inside an
// allocation, --hostfile with --launcher slurm, no hostfile for ssh), 65 for bad Slurm data,
// 69 agents not up.
int LaunchBackendExit(const absl::Status& status);

// One srun step running an ephemeral zerorund on every node of `allocation` (listening on a
// free port with `secret`, killing its ranks when it stops), and the port each one serves.
class SlurmAgents {
 public:
  struct Options {
    std::string zerorund;  // The daemon binary (the same path on every node).
    std::string secret;    // Reaches the agents in srun's environment, never on a command line.
    std::string log_path;  // srun's and the agents' output.
    absl::Duration start_timeout = absl::Minutes(2);
  };
  // Starts the step and waits for every agent's port. Unavailable naming the nodes that did not
  // come up and srun's last words.
  static absl::StatusOr<std::unique_ptr<SlurmAgents>> Start(const SlurmAllocation& allocation,
                                                            const Options& options);
  // SIGTERM to srun (which ends the step: every zerorund, and with it every rank), SIGKILL after
  // 15 s.
  ~SlurmAgents();
  const std::vector<int>& ports() const { return ports_; }

 private:
  SlurmAgents() = default;
  pid_t pid_ = -1;
  std::vector<int> ports_;
};

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_BACKENDS_LAUNCH_BACKEND_H_
