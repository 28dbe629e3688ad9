// JobRunner: fork/exec into process groups, log files tailed by one monitor thread per rank,
// which also reaps its rank; every change is an event in the job's numbered log.
#include "job_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/env.h"
#include "base/fs.h"
#include "base/rank_env.h"
#include "request_validation.h"

extern char** environ;

namespace zerorun::worker {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
constexpr size_t kStderrTailLines = 20;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// ZERORUN_BIN names the launcher's binary; where it is not on this node, the zerorun installed
// next to this daemon stands in. Its directory goes first on the rank's PATH, so a rank's
// `subprocess.run(["zerorun", "report", ...])` works with no PATH of the user's.
void AddZerorunToPath(std::vector<std::string>* env) {
  const std::string prefix = absl::StrCat(rank_env::kZerorunBin, "=");
  auto it = std::find_if(env->begin(), env->end(),
                         [&](const std::string& kv) { return absl::StartsWith(kv, prefix); });
  std::string bin = it == env->end() ? "" : it->substr(prefix.size());
  if (bin.empty() || access(bin.c_str(), X_OK) != 0) {
    char self[4096] = {};
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    const std::string here = n > 0 ? std::string(self, static_cast<size_t>(n)) : "";
    const std::string sibling = here.substr(0, here.rfind('/') + 1) + "zerorun";
    bin = access(sibling.c_str(), X_OK) == 0 ? sibling : "";
  }
  if (it != env->end()) env->erase(it);
  if (bin.empty()) return;
  env->push_back(prefix + bin);
  const char* path = std::getenv("PATH");
  env->push_back(absl::StrCat("PATH=", bin.substr(0, bin.rfind('/')), ":",
                              path != nullptr ? path : "/usr/bin:/bin"));
}

// Reads what was appended to a log file since the last call and splits it into lines.
class Tail {
 public:
  explicit Tail(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~Tail() {
    if (fd_ >= 0) close(fd_);
  }
  // Complete lines read now; with `flush`, also a final partial line.
  std::vector<std::string> Lines(bool flush) {
    std::vector<std::string> lines;
    char buffer[8192];
    ssize_t n = 0;
    while (fd_ >= 0 && (n = read(fd_, buffer, sizeof(buffer))) > 0) {
      partial_.append(buffer, static_cast<size_t>(n));
    }
    size_t start = 0, newline = 0;
    while ((newline = partial_.find('\n', start)) != std::string::npos) {
      lines.push_back(partial_.substr(start, newline - start));
      start = newline + 1;
    }
    partial_.erase(0, start);
    if (flush && !partial_.empty()) {
      lines.push_back(partial_);
      partial_.clear();
    }
    return lines;
  }

 private:
  int fd_;
  std::string partial_;
};

}  // namespace

JobRunner::JobRunner(std::string state_dir) : state_dir_(std::move(state_dir)) {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  hostname_ = name;
}

JobRunner::~JobRunner() {
  std::vector<std::thread> monitors;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    monitors.swap(monitors_);
  }
  for (std::thread& t : monitors) t.join();
}

void JobRunner::Emit(Job* job, v1::RankEvent event) {
  event.set_index(static_cast<int64_t>(job->events.size()));
  event.set_time_unix_ms(NowMs());
  event.set_node(hostname_);
  job->events.push_back(std::move(event));
}

absl::StatusOr<v1::LaunchReply> JobRunner::Launch(const v1::LaunchRequest& request) {
  const std::string& id = request.job_id();
  if (absl::Status s = ValidateLaunchRequest(request); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    if (jobs_.count(id) > 0) return absl::AlreadyExistsError(absl::StrCat("job ", id, " exists"));
  }
  const std::string job_dir = absl::StrCat(state_dir_, "/", id);
  if (absl::Status s = MakeDirs(job_dir, 0755); !s.ok()) return s;
  if (!request.config_json().empty()) {
    std::ofstream(job_dir + "/ds_config.json") << request.config_json();
  }
  const std::string log_dir = request.log_dir().empty() ? job_dir : request.log_dir();
  auto job = std::make_unique<Job>();
  job->id = id;
  for (const v1::RankSpec& spec : request.ranks()) {
    if (spec.argv().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("rank ", spec.rank(), " has no argv"));
    }
    Rank rank;
    rank.spec = spec;
    const std::string dir = absl::StrCat(log_dir, "/rank_", spec.rank());
    if (absl::Status s = MakeDirs(dir, 0755); !s.ok()) return s;
    rank.stdout_path = dir + "/stdout.log";
    rank.stderr_path = dir + "/stderr.log";
    job->ranks.push_back(std::move(rank));
  }

  v1::LaunchReply reply;
  reply.set_job_dir(job_dir);
  for (Rank& rank : job->ranks) {
    // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
    std::vector<std::string> additions(rank.spec.env().begin(), rank.spec.env().end());
    if (!request.config_json().empty()) {
      additions.push_back(absl::StrCat(rank_env::kConfig, "=", job_dir, "/ds_config.json"));
    }
    AddZerorunToPath(&additions);
    std::set<std::string> overridden;
    for (const std::string& kv : additions) overridden.insert(kv.substr(0, kv.find('=')));
    overridden.insert(kEnvSecret.name);  // The cluster secret never reaches a rank.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      if (overridden.count(kv.substr(0, kv.find('='))) == 0) env_strings.push_back(kv);
    }
    env_strings.insert(env_strings.end(), additions.begin(), additions.end());
    std::vector<char*> envp, argv;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args(rank.spec.argv().begin(), rank.spec.argv().end());
    for (std::string& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    const int out = open(rank.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = open(rank.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0 || err < 0) {
      if (out >= 0) close(out);
      if (err >= 0) close(err);
      for (Rank& started : job->ranks) {
        if (started.pid > 0) kill(-started.pid, SIGKILL), waitpid(started.pid, nullptr, 0);
      }
      return absl::InternalError(
          absl::StrCat("cannot create logs under ", log_dir, ": ", std::strerror(errno)));
    }
    const std::string cwd = request.cwd();
    const std::string exec_error = absl::StrCat("zerorund: cannot execute ", args[0], "\n");
    const pid_t pid = fork();
    if (pid == 0) {
      // The launcher blocks SIGINT/SIGTERM for its sigwait thread; ranks start with defaults.
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGPIPE, SIG_DFL);
      setpgid(0, 0);
      dup2(out, 1);
      dup2(err, 2);
      if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
      execvpe(argv[0], argv.data(), envp.data());
      (void)!write(2, exec_error.data(), exec_error.size());
      _exit(127);
    }
    close(out);
    close(err);
    if (pid < 0) {
      return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    }
    setpgid(pid, pid);  // Also from the parent, so a signal right after Launch finds the group.
    rank.pid = pid;
    reply.add_pids(pid);
  }

  absl::MutexLock lock(&mu_);
  Job* raw = job.get();
  jobs_[id] = std::move(job);
  raw->running = static_cast<int>(raw->ranks.size());
  for (size_t i = 0; i < raw->ranks.size(); ++i) {
    v1::RankEvent started;
    started.set_kind(v1::RankEvent::KIND_STARTED);
    started.set_rank(raw->ranks[i].spec.rank());
    started.set_local_rank(raw->ranks[i].spec.local_rank());
    started.set_pid(raw->ranks[i].pid);
    Emit(raw, std::move(started));
    monitors_.emplace_back(&JobRunner::Monitor, this, id, i);
  }
  return reply;
}

void JobRunner::Monitor(const std::string& job_id, size_t rank_index) {
  std::string stdout_path, stderr_path;
  int pid = 0, rank = 0, local_rank = 0;
  {
    absl::MutexLock lock(&mu_);
    const Rank& r = jobs_[job_id]->ranks[rank_index];
    stdout_path = r.stdout_path;
    stderr_path = r.stderr_path;
    pid = r.pid;
    rank = r.spec.rank();
    local_rank = r.spec.local_rank();
  }
  Tail out(stdout_path), err(stderr_path);
  std::deque<std::string> stderr_tail;
  while (true) {
    // Look without reaping: the zombie keeps the pid (and its group) from being reused until
    // the reap below, which happens under mu_, where Signal() checks `running`.
    siginfo_t info{};
    const bool exited =
        waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    std::vector<std::string> out_lines = out.Lines(exited);
    std::vector<std::string> err_lines = err.Lines(exited);
    absl::MutexLock lock(&mu_);
    int status = 0;
    if (exited) {
      // The rank is over: what is left of its process group (DataLoader-style workers, children
      // that ignore SIGTERM) goes now. The unreaped leader keeps the group id ours until the reap.
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    Job* job = jobs_[job_id].get();
    for (int stream = 0; stream < 2; ++stream) {
      for (std::string& line : stream == 0 ? out_lines : err_lines) {
        if (stream == 1) {
          stderr_tail.push_back(line);
          if (stderr_tail.size() > kStderrTailLines) stderr_tail.pop_front();
        }
        v1::RankEvent event;
        event.set_kind(v1::RankEvent::KIND_OUTPUT);
        event.set_rank(rank);
        event.set_local_rank(local_rank);
        event.set_pid(pid);
        event.set_is_stderr(stream == 1);
        event.set_text(std::move(line));
        Emit(job, std::move(event));
      }
    }
    if (exited) {
      Rank& r = job->ranks[rank_index];
      r.running = false;
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      v1::RankEvent event;
      event.set_kind(v1::RankEvent::KIND_EXITED);
      event.set_rank(rank);
      event.set_local_rank(local_rank);
      event.set_pid(pid);
      event.set_exit_code(r.exit_code);
      event.set_signal(r.signal);
      event.set_text(absl::StrJoin(stderr_tail, "\n"));
      Emit(job, std::move(event));
      --job->running;
      return;
    }
    if (shutting_down_) return;  // The rank keeps running; a new agent cannot adopt it yet.
    mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), kPollInterval);
  }
}

absl::StatusOr<int> JobRunner::Signal(const v1::SignalRequest& request) {
  if (absl::Status s = ValidateSignalRequest(request); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", request.job_id()));
  int signalled = 0;
  for (const Rank& rank : it->second->ranks) {
    const bool selected =
        request.ranks().empty() || std::find(request.ranks().begin(), request.ranks().end(),
                                             rank.spec.rank()) != request.ranks().end();
    // The monitor reaps under mu_, so a running rank's pid (and group) is still ours here.
    if (selected && rank.running && kill(-rank.pid, request.signal()) == 0) ++signalled;
  }
  return signalled;
}

absl::Status JobRunner::WaitEvents(const std::string& job_id, int64_t from_index,
                                   absl::Duration timeout, std::vector<v1::RankEvent>* events,
                                   bool* done) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  Job* job = it->second.get();
  struct Args {
    Job* job;
    int64_t from;
    const bool* stop;
  } args{job, from_index, &shutting_down_};
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Args* a) {
                             return static_cast<int64_t>(a->job->events.size()) > a->from ||
                                    a->job->running == 0 || *a->stop;
                           },
                           &args),
                       timeout);
  for (int64_t i = std::max<int64_t>(0, from_index); i < static_cast<int64_t>(job->events.size());
       ++i) {
    events->push_back(job->events[i]);
  }
  *done = job->running == 0;
  return absl::OkStatus();
}

v1::AgentStatusReply JobRunner::Status(const std::string& job_id) {
  v1::AgentStatusReply reply;
  reply.set_hostname(hostname_);
  absl::MutexLock lock(&mu_);
  for (const auto& [id, job] : jobs_) {
    if (!job_id.empty() && id != job_id) continue;
    for (const Rank& rank : job->ranks) {
      v1::AgentRankStatus* s = reply.add_ranks();
      s->set_job_id(id);
      s->set_rank(rank.spec.rank());
      s->set_local_rank(rank.spec.local_rank());
      s->set_pid(rank.pid);
      s->set_running(rank.running);
      s->set_exit_code(rank.exit_code);
      s->set_signal(rank.signal);
    }
  }
  return reply;
}

void JobRunner::KillAll() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, job] : jobs_) {
    for (const Rank& rank : job->ranks) {
      if (rank.running) kill(-rank.pid, SIGKILL);
    }
  }
  auto all_exited = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, job] : jobs_) {
      if (job->running > 0) return false;
    }
    return true;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!all_exited() && absl::Now() < deadline) {
    mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), kPollInterval);
  }
}

}  // namespace zerorun::worker
