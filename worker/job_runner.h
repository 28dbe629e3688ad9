// JobRunner: starts a job's local ranks (each under its own supervisor process, in its own
// process group, stdout/stderr to per-rank log files), watches them, keeps each job's numbered
// event log (journaled on disk, a bounded replay buffer in memory) and the launcher's lease on
// it. The process side of the NodeAgent service; it has no gRPC types, so the launcher can run it
// in-process.
#ifndef ZERORUN_WORKER_JOB_RUNNER_H_
#define ZERORUN_WORKER_JOB_RUNNER_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "event_journal.h"
#include "run_as.h"
#include "user_files.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

struct JobRunnerOptions {
  // One directory per job: <state_dir>/<job_id>/ holds ds_config.json, job.json (the rank
  // records), events.journal, the lease file and, per rank, rank_<N>/ (the supervisor's "exit"
  // and, unless the launch names a log_dir, {stdout,stderr}.log). Created when missing.
  std::string state_dir;
  // The binary that runs the per-rank supervisor (it must call MaybeRunRankSupervisor).
  std::string self_exe = "/proc/self/exe";
  // zerorund: ranks outlive the daemon and a restarted one re-adopts them (Restore). The
  // launcher's embedded agent: false, its ranks end when the launcher process does.
  bool adoptable = false;
  // zerorund's pid file; while that pid lives, a lapsed lease means the launcher is gone.
  std::string daemon_pid_file;
  // Where per-job cgroups are made (CgroupRoot()); empty: none, the subreaper still applies.
  std::string cgroup_root;
  // Events kept in memory per rank for Watch replay; older ones are in the rank logs.
  size_t replay_events_per_rank = 4096;
  // An ended job is forgotten (memory only; its files stay) this long after its last rank exit.
  absl::Duration retention = absl::Minutes(10);
  // zerorund: refuse launches while running as root (its ranks would run as root; a node opts in
  // with --allow-root-ranks). The embedded agent runs ranks as the user who ran zerorun.
  bool refuse_root_ranks = false;
};

class JobRunner {
 public:
  explicit JobRunner(JobRunnerOptions options);
  // A runner for `state_dir` with default options (the embedded agent's).
  explicit JobRunner(std::string state_dir);
  // Stops watching; the ranks keep running under their supervisors (a daemon restart must not
  // kill training) unless KillAll() was called first.
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Re-adopts the live ranks recorded under state_dir by an earlier zerorund (adoptable only):
  // their event numbers continue from the journal, their logs are read on from the last line
  // reported, and ranks that ended meanwhile report the exit their supervisor recorded (or
  // "exit code unknown" when it was lost too). Returns the number of jobs re-adopted.
  int Restore();

  // Each rank runs under a supervisor (a subreaper, in the job's cgroup when there is one): when
  // the rank exits, whatever it left (its process group, re-parented orphans, the cgroup) is
  // SIGKILLed before the exit is reported, so a job leaves no process behind. Returns
  // InvalidArgument for a bad request, AlreadyExists when the job id is in use, Internal when a
  // directory, log file or supervisor cannot be made; a program that cannot be executed starts
  // and exits with 127 (its stderr says why), like a shell. On error, ranks already started are
  // killed. The launch renews the job's lease. `owner`: who asks (kept with the job, Owner()).
  // `run_as` (a root zerorund): the ranks run as that user: its log directories are made and its
  // working directory checked as the user first (PermissionDenied naming the path), the job's
  // rank directories, config and logs are the user's, HOME/USER/LOGNAME are its, and no cgroup
  // is made (the supervisor's subreaper still ends leftovers).
  absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request,
                                         const std::string& owner = "",
                                         const RunAs* run_as = nullptr);
  // Who launched `job_id`, or nullopt for an unknown job.
  std::optional<std::string> Owner(const std::string& job_id);

  // Sends `request.signal()` to the process group of each selected running rank. NotFound for an
  // unknown job. Returns the number of ranks signalled.
  absl::StatusOr<int> Signal(const v1::SignalRequest& request);

  // The launcher is alive and watching `job_id`: renews its lease (see LaunchRequest.lease_ms).
  void Renew(const std::string& job_id);

  // A watcher of `job_id`'s events (a Watch stream, the embedded agent's loop) is attached for
  // the guard's life. While one is, the job's rank monitors hold back rather than drop from the
  // replay buffer what it has not read yet (back-pressure: the ranks never wait, their lines wait
  // in the log files), however slowly it reads; a watcher that goes away (a launcher killed, a
  // connection lost) releases them. Any thread; the runner must outlive the guard.
  class WatcherGuard {
   public:
    WatcherGuard(JobRunner* runner, std::string job_id);
    ~WatcherGuard();
    WatcherGuard(const WatcherGuard&) = delete;
    WatcherGuard& operator=(const WatcherGuard&) = delete;

   private:
    JobRunner* const runner_;
    const std::string job_id_;
  };

  // Waits up to `timeout` for events of `job_id` with index >= `from_index` and appends them to
  // *events. Sets *done when every rank has exited and all its events are in *events. NotFound
  // for an unknown job. When `from_index` is older than the replay buffer, a KIND_GAP event
  // (index: the oldest kept - 1) says how many were dropped and where the logs are.
  absl::Status WaitEvents(const std::string& job_id, int64_t from_index, absl::Duration timeout,
                          std::vector<v1::RankEvent>* events, bool* done);

  // The ranks of `job_id` (empty: of every job; with `owner`, only that owner's jobs).
  const std::string& hostname() const { return hostname_; }
  const std::string& state_dir() const { return options_.state_dir; }
  // True while a rank of `job_id` runs here.
  bool Running(const std::string& job_id);

  v1::AgentStatusReply Status(const std::string& job_id,
                              const std::optional<std::string>& owner = std::nullopt);

  // SIGKILLs every running rank of every job (process groups) and waits for them.
  void KillAll();

  // Jobs held in memory and the events in their replay buffers (for tests and benchmarks).
  std::pair<size_t, size_t> MemoryFootprint();

 private:
  struct Rank {
    v1::RankSpec spec;
    int pid = 0;
    uint64_t start_ticks = 0;
    int supervisor_pid = 0;
    uint64_t supervisor_start_ticks = 0;
    bool supervisor_is_child = false;  // false once re-adopted: it cannot be wait()ed for.
    bool running = true;
    int exit_code = 0;
    int signal = 0;
    bool exit_code_unknown = false;
    std::string end_reason;
    std::string stdout_path, stderr_path, rank_dir;
    int64_t stdout_offset = 0, stderr_offset = 0;  // Where reading resumes.
    std::deque<std::string> stderr_tail;
  };
  struct Job {
    std::string id;
    std::string owner;
    std::string dir;
    std::string cgroup;
    std::string shm_prefix;  // DeepSpeedShmPrefix of the ranks' environment ("" for none).
    FileOwner files;         // Whose rank directories and logs they are (the run-as user, or ours).
    std::vector<Rank> ranks;
    std::deque<v1::RankEvent> events;  // The replay buffer: indexes first_index.. next_index-1.
    int64_t first_index = 0;
    int64_t next_index = 0;
    int64_t acked = 0;  // The watcher has every event before this.
    int watchers = 0;   // WatcherGuards alive.
    // Until the first watcher attaches it is expected (the launcher opens Watch right after
    // Launch): for 3 s, or the lease if shorter; after a restart, 10 s for the launcher to
    // reconnect.
    absl::Time expect_watcher_until = absl::InfinitePast();
    size_t capacity = 0;
    int running = 0;
    EventJournal journal;
    absl::Time last_touch = absl::InfinitePast();
    absl::Time ended = absl::InfiniteFuture();
    std::vector<std::thread> monitors;
  };

  // Launch's steps (job_launch.cc). CheckLaunch: the request valid, not root ranks unless
  // allowed, the id free, the run-as user's directories made as that user. MakeJob: the job's
  // directory, config, lease, journal, cgroup and rank directories (not registered yet).
  // StartRank: rank i's supervisor forked and exec'ed, the rank's pid read back (on an error the
  // ranks started are killed). RecordJob: job.json, what a restarted zerorund re-adopts from.
  // Register: the job in jobs_, its STARTED events, its monitors.
  absl::Status CheckLaunch(const v1::LaunchRequest& request, const RunAs* run_as);
  absl::StatusOr<std::unique_ptr<Job>> MakeJob(const v1::LaunchRequest& request,
                                               const std::string& owner, const RunAs* run_as,
                                               std::string* config_path, std::string* log_dir);
  absl::Status StartRank(const v1::LaunchRequest& request, size_t i, Job* job,
                         const std::string& config_path, const RunAs* run_as);
  static void KillStarted(Job* job);
  absl::Status RecordJob(const Job& job, const std::string& log_dir);
  void Register(const v1::LaunchRequest& request, std::unique_ptr<Job> job);

  void StartMonitors(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Monitor(Job* job, size_t rank_index);
  // Holds a monitor back while an attached watcher is more than half the replay buffer behind:
  // a chatty rank's lines wait in its log file (the rank never blocks), and are dropped from the
  // console only when no launcher is reading.
  void AwaitWatcher(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit(Job* job, v1::RankEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RankEnded(Job* job, Rank* rank, v1::RankEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TouchLease(Job* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets ended jobs older than the retention; their threads are joined outside the lock.
  void Evict();
  std::unique_ptr<Job> RestoreJob(const std::string& job_dir);

  const JobRunnerOptions options_;
  std::string hostname_;
  zerorun::Mutex mu_;  // absl::Mutex, or a stand-in TSan sees through (base/mutex.h).
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_JOB_RUNNER_H_
