// JobRunner::Launch: a job's directories, lease, journal and cgroup, one supervised process per
// rank (fork and exec of the supervisor, which starts the rank), the record a restarted zerorund
// re-adopts them from, then the job registered with its monitors. The rest of JobRunner is in
// job_runner.cc.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "cgroup.h"
#include "google/protobuf/util/json_util.h"
#include "job_runner.h"
#include "log_reader.h"
#include "proc_util.h"
#include "rank_environment.h"
#include "rank_supervisor.h"
#include "request_validation.h"
#include "shm_leftovers.h"
#include "zerorun/v1/agent_state.pb.h"

namespace zerorun::worker {
namespace {

constexpr int64_t kDefaultLeaseMs = 10000;
constexpr int64_t kDefaultWindowMs = 30000;
constexpr int64_t kDefaultGraceMs = 10000;
constexpr int kReadyFd = 3;  // The supervisor writes the rank's pid here.
// How long after a launch its watcher is waited for (the launcher opens Watch right after).
constexpr absl::Duration kExpectWatcherFor = absl::Seconds(3);
// Reads the rank pid the supervisor writes to the ready pipe (up to 10 s).
int ReadReadyPid(int fd) {
  pollfd p{fd, POLLIN, 0};
  std::string text;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline && text.find('\n') == std::string::npos) {
    if (poll(&p, 1, 100) <= 0) continue;
    char buffer[32];
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return std::atoi(text.c_str());
}

int64_t LeaseMs(const v1::LaunchRequest& request) {
  return request.lease_ms() > 0 ? request.lease_ms() : kDefaultLeaseMs;
}

}  // namespace

absl::StatusOr<v1::LaunchReply> JobRunner::Launch(const v1::LaunchRequest& request,
                                                  const std::string& owner, const RunAs* run_as) {
  if (absl::Status s = CheckLaunch(request, run_as); !s.ok()) return s;
  std::string config_path, log_dir;
  absl::StatusOr<std::unique_ptr<Job>> made =
      MakeJob(request, owner, run_as, &config_path, &log_dir);
  if (!made.ok()) return made.status();
  std::unique_ptr<Job> job = *std::move(made);
  v1::LaunchReply reply;
  reply.set_job_dir(job->dir);
  for (size_t i = 0; i < job->ranks.size(); ++i) {
    if (absl::Status s = StartRank(request, i, job.get(), config_path, run_as); !s.ok()) return s;
    reply.add_pids(job->ranks[i].pid);
  }
  if (absl::Status s = RecordJob(*job, log_dir); !s.ok()) {
    KillStarted(job.get());
    return s;
  }
  Register(request, std::move(job));
  return reply;
}

absl::Status JobRunner::CheckLaunch(const v1::LaunchRequest& request, const RunAs* run_as) {
  const std::string& id = request.job_id();
  if (absl::Status s = ValidateLaunchRequest(request); !s.ok()) return s;
  if (options_.refuse_root_ranks && (run_as != nullptr ? run_as->uid == 0 : geteuid() == 0)) {
    return absl::PermissionDeniedError(
        "zerorund runs as root here, so the ranks would run as root: refused. Fix: run zerorund "
        "as an unprivileged user (deploy/systemd/zerorund.service: User=zerorun), or start it with "
        "--allow-root-ranks on a node that accepts root ranks");
  }
  Evict();
  {
    zerorun::MutexLock lock(&mu_);
    if (jobs_.count(id) > 0) return absl::AlreadyExistsError(absl::StrCat("job ", id, " exists"));
  }
  if (run_as != nullptr) {
    // As the user, before anything is made as root: its log directories and working directory.
    std::vector<std::string> dirs;
    for (const v1::RankSpec& spec : request.ranks()) {
      if (!request.log_dir().empty())
        dirs.push_back(absl::StrCat(request.log_dir(), "/rank_", spec.rank()));
    }
    if (absl::Status s = PrepareAs(*run_as, dirs, request.cwd()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<JobRunner::Job>> JobRunner::MakeJob(const v1::LaunchRequest& request,
                                                                   const std::string& owner,
                                                                   const RunAs* run_as,
                                                                   std::string* config_path,
                                                                   std::string* log_dir) {
  const std::string& id = request.job_id();
  // Hands a path zerorund made to the user the ranks run as (nothing without run_as).
  auto give = [run_as](const std::string& path) {
    if (run_as != nullptr) (void)!lchown(path.c_str(), run_as->uid, run_as->gid);
  };
  auto job = std::make_unique<Job>();
  job->id = id;
  job->owner = owner;
  job->dir = absl::StrCat(options_.state_dir, "/", id);
  job->files = run_as != nullptr ? FileOwner{run_as->uid, run_as->gid} : FileOwner::Self();
  // A job id this zerorund forgot keeps its directory: only its owner may launch it again (the
  // rank directories there are that user's).
  if (absl::StatusOr<v1::AgentJobRecord> old = ReadJobRecord(options_.state_dir, id);
      old.ok() && (old->owner() != owner || old->run_as_uid() != job->files.ToRecord())) {
    return absl::AlreadyExistsError(absl::StrCat(
        "job id ", id, " was used on ", hostname_, " by ",
        old->owner().empty() ? "another caller" : old->owner(), ". Fix: another --job-id"));
  }
  job->capacity = options_.replay_events_per_rank * static_cast<size_t>(request.ranks_size());
  if (absl::Status s = MakeDirs(job->dir, 0700); !s.ok()) return s;
  if (!request.config_json().empty()) {
    *config_path = job->dir + "/ds_config.json";
    if (absl::Status s = WriteFileAtomic(*config_path, request.config_json(), 0600); !s.ok()) {
      return s;
    }
    give(*config_path);
  }
  // The user's supervisors reach their rank directories, the lease and the config through it.
  if (run_as != nullptr) chmod(job->dir.c_str(), 0711);
  const int64_t window_ms =
      request.reconnect_window_ms() > 0 ? request.reconnect_window_ms() : kDefaultWindowMs;
  if (absl::Status s = WriteLeaseFile(job->dir + "/lease", LeaseMs(request), window_ms); !s.ok()) {
    return s;
  }
  if (absl::Status s = job->journal.Open(job->dir + "/events.journal", true); !s.ok()) return s;
  if (!options_.cgroup_root.empty() && run_as == nullptr) {
    if (absl::StatusOr<std::string> cg = MakeCgroup(options_.cgroup_root, id); cg.ok()) {
      job->cgroup = *cg;
    }
  }
  *log_dir = request.log_dir().empty() ? job->dir : request.log_dir();
  for (const v1::RankSpec& spec : request.ranks()) {
    Rank rank;
    rank.spec = spec;
    rank.spec.clear_env();  // Kept in memory and on disk: no secrets there.
    rank.rank_dir = absl::StrCat(job->dir, "/rank_", spec.rank());
    const std::string dir = absl::StrCat(*log_dir, "/rank_", spec.rank());
    for (const std::string& d : {rank.rank_dir, dir}) {
      if (absl::Status s = MakeDirs(d, 0700); !s.ok()) return s;
      if (d == rank.rank_dir) give(d);  // A log_dir's were made as the user.
    }
    unlink((rank.rank_dir + "/exit").c_str());  // From an earlier job under this id.
    rank.stdout_path = dir + "/stdout.log";
    rank.stderr_path = dir + "/stderr.log";
    job->ranks.push_back(std::move(rank));
  }
  return job;
}

void JobRunner::KillStarted(Job* job) {
  for (Rank& started : job->ranks) {
    if (started.pid > 0) kill(-started.pid, SIGKILL);
    if (started.supervisor_pid > 0) waitpid(started.supervisor_pid, nullptr, 0);
  }
}

absl::Status JobRunner::StartRank(const v1::LaunchRequest& request, size_t i, Job* job,
                                  const std::string& config_path, const RunAs* run_as) {
  Rank& rank = job->ranks[i];
  const int64_t grace_ms = request.grace_ms() > 0 ? request.grace_ms() : kDefaultGraceMs;
  // Everything the child needs is prepared before fork(): only async-signal-safe calls after.
  std::vector<std::string> env_strings =
      RankEnvironment(request.ranks(static_cast<int>(i)), config_path, run_as);
  if (i == 0) job->shm_prefix = DeepSpeedShmPrefix(env_strings, job->files.uid);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  SupervisorArgs sup;
  sup.rank_dir = rank.rank_dir;
  sup.lease_file = job->dir + "/lease";
  sup.grace_ms = grace_ms;
  sup.adoptable = options_.adoptable;
  sup.daemon_pid_file = options_.daemon_pid_file;
  if (!job->cgroup.empty()) {
    if (absl::StatusOr<std::string> cg =
            MakeCgroup(job->cgroup, "rank_" + std::to_string(rank.spec.rank()));
        cg.ok()) {
      sup.cgroup = *cg;
    }
  }
  sup.ready_fd = kReadyFd;
  sup.argv.assign(rank.spec.argv().begin(), rank.spec.argv().end());
  std::vector<std::string> args = SupervisorCommand(options_.self_exe, sup);
  args[0] = "zerorun-rank-supervisor";  // What `ps` shows; the binary is options_.self_exe.
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  // As root, in a directory the user controls: never through a link the user planted.
  absl::StatusOr<int> out_fd = CreateOwnedFile(rank.stdout_path, job->files);
  absl::StatusOr<int> err_fd =
      out_fd.ok() ? CreateOwnedFile(rank.stderr_path, job->files) : out_fd.status();
  const int out = out_fd.ok() ? *out_fd : -1, err = err_fd.ok() ? *err_fd : -1;
  int ready[2] = {-1, -1};
  if (out < 0 || err < 0 || pipe2(ready, O_CLOEXEC) != 0) {
    const absl::Status why = !err_fd.ok() ? err_fd.status() : absl::InternalError(strerror(errno));
    for (int fd : {out, err, ready[0], ready[1]}) {
      if (fd >= 0) close(fd);
    }
    KillStarted(job);
    return absl::Status(why.code(), absl::StrCat("cannot create the logs of rank ",
                                                 rank.spec.rank(), ": ", why.message()));
  }
  const std::string cwd = request.cwd();
  const std::string cwd_error = absl::StrCat("zerorund: cannot enter ", cwd, "\n");
  const std::string exe = options_.self_exe;
  const std::string drop_error =
      absl::StrCat("zerorund: cannot become user ", run_as != nullptr ? run_as->name : "", "\n");
  const pid_t pid = fork();
  if (pid == 0) {
    // The launcher blocks SIGINT/SIGTERM for its sigwait thread; the supervisor sets its own.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    // Not the daemon's stdin (a terminal, or the ssh session an ephemeral zerorund watches).
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in > 0) {
      dup2(null_in, 0);
      close(null_in);
    }
    dup2(out, 1);
    dup2(err, 2);
    dup2(ready[1], kReadyFd);
    if (run_as != nullptr && !DropTo(*run_as)) {  // Never exec as root what the user asked.
      (void)!write(2, drop_error.data(), drop_error.size());
      _exit(126);
    }
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      (void)!write(2, cwd_error.data(), cwd_error.size());
      _exit(127);
    }
    execve(exe.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(out);
  close(err);
  close(ready[1]);
  if (pid < 0) {
    close(ready[0]);
    KillStarted(job);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  rank.supervisor_pid = pid;
  rank.supervisor_is_child = true;
  rank.pid = ReadReadyPid(ready[0]);
  close(ready[0]);
  if (rank.pid <= 0) {
    kill(pid, SIGKILL);
    KillStarted(job);
    return absl::InternalError(absl::StrCat("the supervisor of rank ", rank.spec.rank(),
                                            " did not start it (see ", rank.stderr_path, ")"));
  }
  if (std::optional<ProcFacts> f = ReadProcFacts(rank.pid)) rank.start_ticks = f->start_ticks;
  if (std::optional<ProcFacts> f = ReadProcFacts(pid)) rank.supervisor_start_ticks = f->start_ticks;
  return absl::OkStatus();
}

absl::Status JobRunner::RecordJob(const Job& job, const std::string& log_dir) {
  const std::string& id = job.id;
  // The record a restarted zerorund re-adopts the ranks from.
  v1::AgentJobRecord record;
  record.set_job_id(id);
  record.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  record.set_log_dir(log_dir);
  record.set_cgroup(job.cgroup);
  record.set_shm_prefix(job.shm_prefix);
  record.set_owner(job.owner);
  record.set_run_as_uid(job.files.ToRecord());
  for (const Rank& rank : job.ranks) {
    v1::AgentRankRecord* r = record.add_ranks();
    r->set_rank(rank.spec.rank());
    r->set_local_rank(rank.spec.local_rank());
    r->set_pid(rank.pid);
    r->set_start_ticks(rank.start_ticks);
    r->set_supervisor_pid(rank.supervisor_pid);
    r->set_supervisor_start_ticks(rank.supervisor_start_ticks);
    r->set_stdout_path(rank.stdout_path);
    r->set_stderr_path(rank.stderr_path);
    r->set_rank_dir(rank.rank_dir);
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(record, &json);
  return WriteFileAtomic(job.dir + "/job.json", json, 0600);
}

void JobRunner::Register(const v1::LaunchRequest& request, std::unique_ptr<Job> job) {
  const std::string& id = request.job_id();
  zerorun::MutexLock lock(&mu_);
  Job* raw = job.get();
  jobs_[id] = std::move(job);
  raw->running = static_cast<int>(raw->ranks.size());
  raw->expect_watcher_until =
      absl::Now() + std::min(absl::Milliseconds(LeaseMs(request)), kExpectWatcherFor);
  TouchLease(raw);
  for (const Rank& rank : raw->ranks) {
    v1::RankEvent started;
    started.set_kind(v1::RankEvent::KIND_STARTED);
    started.set_rank(rank.spec.rank());
    started.set_local_rank(rank.spec.local_rank());
    started.set_pid(rank.pid);
    Emit(raw, std::move(started));
  }
  (void)raw->journal.Flush();
  StartMonitors(raw);
}

}  // namespace zerorun::worker
