// The launch backends (see launch_backend.h): resident zerorunds, and Slurm's ephemeral ones.
#include "launch_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "auth.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "base/fs.h"
#include "cgroup.h"
#include "job_runner.h"
#include "node_agent.h"
#include "proc_util.h"

extern char** environ;

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
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

ClientAuth SecretAuth(const std::string& secret) {
  ClientAuth auth;
  auth.secret = secret;
  return auth;
}

// The agents are the job's own, reached with its secret (not the user's credentials).
class SlurmBackend final : public BackendBase {
 public:
  SlurmBackend(const std::string& secret, std::ostream& err)
      : BackendBase(SecretAuth(secret), /*embedded=*/false), err_(err), secret_(secret) {}

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

}  // namespace

const std::vector<std::string>& LaunchBackendNames() {
  static const std::vector<std::string> kNames = {"zerorund", "slurm"};
  return kNames;
}

std::string UnknownLaunchBackend(const std::string& name) {
  for (const std::string& known : LaunchBackendNames()) {
    if (name == known) return "";
  }
  return absl::StrCat("--launcher ", name, " is not taken here: zerorun starts the ranks through ",
                      "zerorund on every node (the default, --launcher zerorund) or through srun "
                      "inside a Slurm allocation (--launcher slurm); no pdsh or MPI is needed");
}

std::unique_ptr<LaunchBackend> NewLaunchBackend(const std::string& name, const ClientAuth& auth,
                                                std::ostream& err) {
  if (name == "slurm") return std::make_unique<SlurmBackend>(NewSecret(), err);
  return std::make_unique<ResidentBackend>(auth);
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
  // The environment srun hands to every task: ours, with the job's agent secret.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind(std::string(kEnvSecret.name) + "=", 0) != 0) env.push_back(*e);
  }
  env.push_back(absl::StrCat(kEnvSecret.name, "=", options.secret));
  std::vector<char*> c_argv, c_env;
  for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  for (const std::string& e : env) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);
  const int log = open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log < 0) return absl::InternalError(absl::StrCat("cannot write ", options.log_path));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    // Its own process group: a Ctrl-C for zerorun must not reach srun (whose second SIGINT
    // kills the step at once); zerorun ends it after stopping the job. And it ends with us.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execvpe("srun", c_argv.data(), c_env.data());
    const char message[] = "zerorun: cannot run srun (is Slurm's client installed?)\n";
    (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
    _exit(127);
  }
  close(log);
  std::unique_ptr<SlurmAgents> agents(new SlurmAgents());
  agents->pid_ = pid;
  agents->ports_.assign(allocation.nodes.size(), 0);
  // srun --label prefixes each line with its task number: task i is node i of the allocation.
  const std::regex port_line(R"(^\s*(\d+): .*serving NodeAgent on .*\(port (\d+)\))");
  const absl::Time deadline = absl::Now() + options.start_timeout;
  std::string text;
  while (true) {
    std::ifstream in(options.log_path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      const std::string l(line);
      std::smatch sm;
      if (std::regex_search(l, sm, port_line)) {
        const size_t task_index = std::stoul(sm[1].str());
        if (task_index < agents->ports_.size()) agents->ports_[task_index] = std::stoi(sm[2]);
      }
    }
    std::vector<std::string> missing;
    for (size_t i = 0; i < agents->ports_.size(); ++i) {
      if (agents->ports_[i] == 0) missing.push_back(allocation.nodes[i]);
    }
    if (missing.empty()) return agents;
    int status = 0;
    const bool exited = waitpid(pid, &status, WNOHANG) == pid;
    if (exited) agents->pid_ = -1;
    if (exited || absl::Now() > deadline) {
      std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
      if (lines.size() > 8) lines.erase(lines.begin(), lines.end() - 8);
      return absl::UnavailableError(absl::StrCat(
          "zerorund did not come up on node(s) ", absl::StrJoin(missing, ","), " within ",
          absl::FormatDuration(options.start_timeout), exited ? " (srun exited)" : "",
          "; srun said:\n    ", absl::StrJoin(lines, "\n    "), "\n  (all of it in ",
          options.log_path, ")"));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

SlurmAgents::~SlurmAgents() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace zerorun::launcher
