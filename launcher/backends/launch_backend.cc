// The launch backends (see launch_backend.h): resident zerorunds, and ephemeral ones started by
// Slurm or over ssh.
#include "backends/launch_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backends/agent_spawn.h"
#include "backends/ssh_agents.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/fs.h"
#include "cgroup.h"
#include "inputs/resource_filter.h"
#include "job_runner.h"
#include "node_agent.h"
#include "proc_util.h"
#include "security/auth.h"

namespace zerorun::launcher {
namespace {

// The embedded agent's runner: its ranks end with this process (not adoptable).
worker::JobRunnerOptions EmbeddedRunnerOptions() {
  worker::JobRunnerOptions options;
  options.state_dir = ZerorunHome() + "/agent";
  options.cgroup_root = worker::AgentCgroupRoot(options.state_dir);
  return options;
}

// What every backend holds: this machine's agent (probes; the embedded runner) and the pool.
class BackendBase : public LaunchBackend {
 public:
  BackendBase(const ClientAuth& auth, bool embedded)
      : agent_(GetEnv(kEnvNvmlLibrary)),
        runner_(EmbeddedRunnerOptions()),
        pool_(&agent_, &runner_, auth, embedded) {}
  AgentPool& agents() override { return pool_; }

 private:
  const worker::NodeAgent agent_;
  worker::JobRunner runner_;
  AgentPool pool_;
};

class ResidentBackend final : public BackendBase {
 public:
  explicit ResidentBackend(const ClientAuth& auth) : BackendBase(auth, true) {}
  absl::Status Prepare(PreflightOptions*) override { return absl::OkStatus(); }
};

// The zerorund binary beside this one (installed) or in the build tree's worker/.
std::string FindZerorund() {
  const std::string self = worker::SelfExecutable();
  if (self.empty()) return "";
  const std::string dir = self.substr(0, self.rfind('/'));
  for (const std::string& candidate : {dir + "/zerorund", dir + "/../worker/zerorund"}) {
    char resolved[PATH_MAX];
    if (access(candidate.c_str(), X_OK) == 0 && realpath(candidate.c_str(), resolved) != nullptr) {
      return resolved;  // Other nodes run it from this path: no "..", no symlink of ours.
    }
  }
  return "";
}

// The agents are the job's own, reached with its secret (not the user's credentials).
class SlurmBackend final : public BackendBase {
 public:
  SlurmBackend(const std::string& secret, std::ostream& err)
      : BackendBase(ClientAuth::WithSecret(secret), /*embedded=*/false),
        err_(err),
        secret_(secret) {}

  std::string agent_secret() const override { return secret_; }

  absl::Status Prepare(PreflightOptions* options) override {
    if (options->hostfile.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--launcher slurm takes its hosts from the Slurm allocation (SLURM_JOB_NODELIST), not "
          "from --hostfile ",
          *options->hostfile, ". Fix: drop --hostfile, or drop --launcher slurm"));
    }
    absl::StatusOr<SlurmAllocation> allocation = AllocationFromEnvironment(
        [](const char* name) -> std::optional<std::string> {
          const char* value = std::getenv(name);  // Slurm's variables, not zerorun's.
          return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
        },
        options->device == v1::DEVICE_GPU);
    if (!allocation.ok()) return allocation.status();
    const std::string zerorund = FindZerorund();
    if (zerorund.empty()) {
      return absl::FailedPreconditionError(
          "--launcher slurm: no zerorund beside this zerorun (it is started on every node from "
          "the same path). Fix: install both in one directory");
    }
    const std::string dir = ZerorunHome() + "/slurm";
    if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return s;
    const std::string base = absl::StrCat(dir, "/", allocation->job_id, "-", getpid());
    SlurmAgents::Options agent_options;
    agent_options.zerorund = zerorund;
    agent_options.secret = secret_;
    agent_options.log_path = base + ".agents.log";
    err_ << "zerorun: Slurm job " << allocation->job_id << ": starting zerorund on "
         << allocation->nodes.size() << " node(s) (" << allocation->nodelist << ") with srun; "
         << "their output goes to " << agent_options.log_path << std::endl;
    absl::StatusOr<std::unique_ptr<SlurmAgents>> started =
        SlurmAgents::Start(*allocation, agent_options);
    if (!started.ok()) return started.status();
    slurm_ = *std::move(started);
    const std::string hostfile = base + ".hosts.yaml";
    std::ofstream out(hostfile, std::ios::trunc);
    out << AllocationHostfile(*allocation, slurm_->ports());
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", hostfile));
    options->hostfile = hostfile;
    return absl::OkStatus();
  }

 private:
  std::ostream& err_;
  const std::string secret_;
  std::unique_ptr<SlurmAgents> slurm_;  // Destroyed first: the step ends before the pool.
};

// One zerorund per host of the hostfile (after --include/--exclude), started over ssh; the
// agents are the job's own, reached with its secret, which reaches them over ssh's stdin.
class SshBackend final : public BackendBase {
 public:
  SshBackend(const std::string& secret, const LaunchBackendOptions& options, std::ostream& err)
      : BackendBase(ClientAuth::WithSecret(secret), /*embedded=*/false),
        err_(err),
        secret_(secret),
        ssh_args_(SshArgs(options.ssh_args, options.ssh_port)),
        name_(options.name) {}

  std::string agent_secret() const override { return secret_; }

  absl::Status Prepare(PreflightOptions* options) override {
    const std::string path = HostfilePath(*options);
    if (path.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--launcher ", name_,
                       " starts zerorund on the hosts of a hostfile, and there is none. "
                       "Fix: pass --hostfile FILE (or put one at ",
                       options->default_hostfile, ")"));
    }
    // A hostfile or filter that does not parse starts nothing: pre-flight reports it as usual.
    absl::StatusOr<Hostfile> hostfile = LoadHostfile(path);
    if (!hostfile.ok()) return absl::OkStatus();
    absl::StatusOr<ResourcePlan> plan = ApplyFilter(*hostfile, options->filter);
    if (!plan.ok()) return absl::OkStatus();
    const std::string zerorund = FindZerorund();
    if (zerorund.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--launcher ", name_,
                       ": no zerorund beside this zerorun (it is started on every host "
                       "from the same path). Fix: install both in one directory"));
    }
    SshAgents::Options agent_options;
    agent_options.zerorund = zerorund;
    agent_options.secret = secret_;
    agent_options.ssh_args = ssh_args_;
    agent_options.log_dir = ZerorunHome() + "/ssh";
    agent_options.tag = absl::StrCat(getpid(), "-", absl::ToUnixMillis(absl::Now()));
    if (absl::Status s = MakeDirs(agent_options.log_dir, 0700); !s.ok()) return s;
    std::vector<std::string> destinations;
    for (const Host& host : plan->hosts) destinations.push_back(host.address);
    err_ << "zerorun: starting zerorund over ssh on " << destinations.size() << " host(s) ("
         << absl::StrJoin(destinations, ",") << "); their output goes to " << agent_options.log_dir
         << "/" << agent_options.tag << ".*.log" << std::endl;
    absl::StatusOr<std::unique_ptr<SshAgents>> started =
        SshAgents::Start(destinations, agent_options);
    if (!started.ok()) return started.status();
    ssh_ = *std::move(started);
    for (size_t i = 0; i < plan->hosts.size(); ++i) {
      // ssh's "user@host" is the user to log in as; the agent is reached at the host.
      const std::string& target = destinations[i];
      options->agent_endpoints[plan->hosts[i].name] = {target.substr(target.rfind('@') + 1),
                                                       ssh_->ports()[i]};
    }
    return absl::OkStatus();
  }

 private:
  std::ostream& err_;
  const std::string secret_;
  const std::vector<std::string> ssh_args_;
  const std::string name_;
  std::unique_ptr<SshAgents> ssh_;  // Destroyed first: the sessions end before the pool.
};

}  // namespace

const std::vector<std::string>& LaunchBackendNames() {
  static const std::vector<std::string> kNames = {"zerorund", "slurm", "ssh", "pdsh"};
  return kNames;
}

std::string UnknownLaunchBackend(const std::string& name) {
  for (const std::string& known : LaunchBackendNames()) {
    if (name == known) return "";
  }
  return absl::StrCat("--launcher ", name, " is not taken here: zerorun starts the ranks through ",
                      "zerorund on every node (the default, --launcher zerorund), through srun "
                      "inside a Slurm allocation (--launcher slurm), or over ssh to each host "
                      "(--launcher ssh, or DeepSpeed's pdsh); no MPI is needed");
}

std::unique_ptr<LaunchBackend> NewLaunchBackend(const LaunchBackendOptions& options,
                                                std::ostream& err) {
  if (options.name == "slurm") return std::make_unique<SlurmBackend>(NewSecret(), err);
  if (options.name == "ssh" || options.name == "pdsh") {
    return std::make_unique<SshBackend>(NewSecret(), options, err);
  }
  return std::make_unique<ResidentBackend>(options.auth);
}

int LaunchBackendExit(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kFailedPrecondition:
      return kExitUsage;
    case absl::StatusCode::kInvalidArgument:
      return kExitDataErr;
    case absl::StatusCode::kUnavailable:
      return kExitUnavailable;
    default:
      return kExitSoftware;
  }
}

absl::StatusOr<std::unique_ptr<SlurmAgents>> SlurmAgents::Start(const SlurmAllocation& allocation,
                                                                const Options& options) {
  const std::string nodes = std::to_string(allocation.nodes.size());
  // Each task: its own state directory on its node; no cgroups of ours (Slurm's step has them);
  // its ranks die with it; root ranks only where Slurm already runs the job as root.
  std::string task = absl::StrCat(
      "exec \"$0\" --listen 0.0.0.0:0 --auth secret --kill-jobs-on-exit --no-cgroups "
      "--unix-socket none --state-dir "
      "\"${TMPDIR:-/tmp}/zerorun-slurm-${SLURM_JOB_ID}.${SLURM_STEP_ID}.${SLURM_PROCID}\"",
      geteuid() == 0 ? " --allow-root-ranks" : "");
  const std::vector<std::string> argv = {"srun",
                                         "--nodes=" + nodes,
                                         "--ntasks=" + nodes,
                                         "--ntasks-per-node=1",
                                         "--overlap",
                                         "--whole",
                                         "--cpu-bind=none",
                                         "--kill-on-bad-exit=0",
                                         "--label",
                                         "--unbuffered",
                                         "--job-name=zerorund",
                                         "/bin/sh",
                                         "-c",
                                         task,
                                         options.zerorund};
  // srun hands every task our environment with the job's agent secret. Its own process group:
  // a Ctrl-C for zerorun must not reach srun (whose second SIGINT kills the step at once);
  // zerorun ends it after stopping the job.
  absl::StatusOr<SpawnedAgent> spawned = SpawnAgentProcess(
      argv, EnvironmentWith(kEnvSecret.name, absl::StrCat(kEnvSecret.name, "=", options.secret)),
      options.log_path, /*stdin_pipe=*/false,
      "zerorun: cannot run srun (is Slurm's client installed?)");
  if (!spawned.ok()) return spawned.status();
  std::unique_ptr<SlurmAgents> agents(new SlurmAgents());
  agents->pid_ = spawned->pid;
  agents->ports_.assign(allocation.nodes.size(), 0);
  // srun --label prefixes each line with its task number: task i is node i of the allocation.
  const std::regex task_line(R"(^\s*(\d+): )");
  const absl::Time deadline = absl::Now() + options.start_timeout;
  while (true) {
    const std::string text = worker::ReadSmallFile(options.log_path).value_or("");
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      std::cmatch sm;
      const std::optional<int> port = ServingPort(line);
      if (port.has_value() && std::regex_search(line.begin(), line.end(), sm, task_line)) {
        const size_t task_index = std::stoul(sm[1].str());
        if (task_index < agents->ports_.size()) agents->ports_[task_index] = *port;
      }
    }
    std::vector<std::string> missing;
    for (size_t i = 0; i < agents->ports_.size(); ++i) {
      if (agents->ports_[i] == 0) missing.push_back(allocation.nodes[i]);
    }
    if (missing.empty()) return agents;
    const bool exited = ProcessExited(agents->pid_);
    if (exited) agents->pid_ = -1;
    if (exited || absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat(
          "zerorund did not come up on node(s) ", absl::StrJoin(missing, ","), " within ",
          absl::FormatDuration(options.start_timeout), exited ? " (srun exited)" : "",
          "; srun said:\n", LastLines(text, 8), "\n  (all of it in ", options.log_path, ")"));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

SlurmAgents::~SlurmAgents() { EndProcess(pid_, absl::Seconds(15)); }

}  // namespace zerorun::launcher
