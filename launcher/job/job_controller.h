// The job controller's class, shared by job.cc (set-up, restarts, the end) and job_attempt.cc
// (one attempt: launch everywhere, watch, propagate the first failure). Private to launcher/.
#ifndef ZERORUN_LAUNCHER_JOB_JOB_CONTROLLER_H_
#define ZERORUN_LAUNCHER_JOB_JOB_CONTROLLER_H_

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "job/coordinator.h"
#include "job/endpoints.h"
#include "job/job.h"
#include "job/job_record.h"
#include "job/launch_spec.h"

namespace zerorun::launcher::job_internal {

// "SIGTERM", or "signal N" for one without a name.
std::string SignalName(int signal);

// What the controller's loop waits on: events from the node watchers, their ends, signals.
struct Inbox {
  absl::Mutex mu;
  std::deque<std::pair<size_t, v1::RankEvent>> events ABSL_GUARDED_BY(mu);
  std::vector<std::pair<size_t, absl::Status>> finished ABSL_GUARDED_BY(mu);
  std::vector<int> signals ABSL_GUARDED_BY(mu);
  std::vector<std::string> notices ABSL_GUARDED_BY(mu);
};

constexpr size_t kLastLinesPerRank = 5;

class Controller {
 public:
  Controller(const RunOptions& options, AgentPool& agents, std::ostream& out, std::ostream& err)
      : opt_(options), agents_(agents), out_(out), err_(err) {}

  int Run();

 private:
  // What every node's launch gets, from the pre-flight report and the coordinator's endpoints.
  LaunchSpec MakeSpec(const PreflightReport& report, std::vector<NodeEndpoints> endpoints,
                      const std::string& job_secret) const;
  // After the last attempt (`attempt`): records the final status, stops `coordinator` and says
  // how the job ended; returns the exit code.
  int Finish(int attempt, grpc::Server* coordinator);
  // Launches attempt spec.attempt everywhere and runs it to its end; returns its exit code.
  int RunAttempt(const LaunchSpec& spec, JobRecord& record, Inbox& inbox);
  // Whether the attempt that just ended may be followed by another (--max-restarts).
  bool Restartable(int attempt, Inbox& inbox);
  void Say(const std::string& text) { err_ << "zerorun: " << text << std::endl; }
  void SignalAll(int signal);
  void BeginStop(int signal);
  void Handle(size_t node, const v1::RankEvent& event);
  void CheckHang();
  void AbandonSilentNodes();
  std::string Summary() const;

  const RunOptions& opt_;
  AgentPool& agents_;
  std::ostream& out_;
  std::ostream& err_;
  std::vector<Host> hosts_;
  std::vector<AgentClient*> clients_;
  std::vector<bool> lost_;  // Nodes declared lost: never waited on again.
  std::vector<bool> node_done_;
  // Per node: when it was last heard from, in ms since the epoch, and whether to give up on it.
  std::unique_ptr<std::atomic<int64_t>[]> heard_ms_;
  std::unique_ptr<std::atomic<bool>[]> abandon_;
  std::vector<std::thread> signallers_;
  std::map<int, std::deque<std::string>> last_lines_;  // Per rank, for the hang report.
  std::string job_id_;
  std::string agent_job_id_;  // The current attempt's id on the agents (AgentJobId).
  std::unique_ptr<JobState> state_;
  // Root cause: the first failure seen, or the first after it that is not only a lost peer
  // (kExitPeerFailed) (the events of one node are ordered; across nodes the
  // earliest timestamp wins).
  bool failed_ = false;
  v1::RankEvent root_;
  size_t root_node_ = 0;
  bool root_is_victim_ = false;  // The root cause so far is a rank that only lost a peer.
  bool sent_sigkill_ = false;    // A SIGKILL exit before this is not ours (e.g. the OOM killer).
  int exit_code_ = 0;
  bool stopping_ = false;
  absl::Time kill_at_ = absl::InfiniteFuture();
  absl::Time last_interrupt_ = absl::InfinitePast();
  int stopped_by_us_ = 0;      // Ranks ended by our SIGTERM/SIGKILL after the root cause.
  int failed_after_ = 0;       // Ranks that failed on their own after the root cause.
  int interrupted_by_ = 0;     // The signal, or stop request, that ended the attempt.
  bool user_stopped_ = false;  // A stop signal or 'zerorun stop' came: never restart.
  bool launch_failed_ = false;
};

}  // namespace zerorun::launcher::job_internal

#endif  // ZERORUN_LAUNCHER_JOB_JOB_CONTROLLER_H_
