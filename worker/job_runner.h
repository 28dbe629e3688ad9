// JobRunner: starts a job's local ranks (fork/exec, one process group each, stdout/stderr to
// per-rank log files), watches them, and keeps each job's numbered event log. The process side
// of the NodeAgent service; it has no gRPC types, so the launcher can run it in-process.
#ifndef ZERORUN_WORKER_JOB_RUNNER_H_
#define ZERORUN_WORKER_JOB_RUNNER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

class JobRunner {
 public:
  // `state_dir` holds one directory per job (<state_dir>/<job_id>/: ds_config.json and, unless
  // the launch names a log_dir, rank_<N>/{stdout,stderr}.log). It is created when missing.
  explicit JobRunner(std::string state_dir);
  // Stops watching; the ranks keep running (a daemon restart must not kill training) unless
  // KillAll() was called first.
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Each rank runs in its own process group; when the rank (the group's leader) exits, whatever
  // is left of its group is SIGKILLed before the exit is reported, so a job leaves no process
  // behind (a double-forked daemon that left the group with setsid is not found this way).
  // Starts every rank of `request`. Returns InvalidArgument for an empty or duplicate job id or
  // a rank without argv, AlreadyExists when the job id is in use, Internal when a directory or
  // log file cannot be created; a program that cannot be executed starts and exits with 127
  // (its stderr says why), like a shell. On error, ranks already started are killed.
  absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request);

  // Sends `request.signal()` to the process group of each selected running rank. NotFound for an
  // unknown job. Returns the number of ranks signalled.
  absl::StatusOr<int> Signal(const v1::SignalRequest& request);

  // Waits up to `timeout` for events of `job_id` with index >= `from_index` and appends them to
  // *events. Sets *done when every rank has exited and all its events are in *events.
  // NotFound for an unknown job.
  absl::Status WaitEvents(const std::string& job_id, int64_t from_index, absl::Duration timeout,
                          std::vector<v1::RankEvent>* events, bool* done);

  v1::AgentStatusReply Status(const std::string& job_id);

  // SIGKILLs every running rank of every job (process groups) and waits for them.
  void KillAll();

 private:
  struct Rank {
    v1::RankSpec spec;
    int pid = 0;
    bool running = true;
    int exit_code = 0;
    int signal = 0;
    std::string stdout_path, stderr_path;
  };
  struct Job {
    std::string id;
    std::vector<Rank> ranks;
    std::vector<v1::RankEvent> events;
    int running = 0;
  };

  void Monitor(const std::string& job_id, size_t rank_index);
  void Emit(Job* job, v1::RankEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string state_dir_;
  std::string hostname_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> monitors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_JOB_RUNNER_H_
