// The job's coordinator: JobState (rank table, heartbeats, key-value store, root cause) shared
// by the job controller and CoordinatorService, the gRPC face ranks and `zerorun status` use.
#ifndef ZERORUN_LAUNCHER_JOB_COORDINATOR_H_
#define ZERORUN_LAUNCHER_JOB_COORDINATOR_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "zerorun/v1/coordinator.grpc.pb.h"

namespace zerorun::launcher {

struct RankSlot {
  int rank = 0;
  int local_rank = 0;
  std::string node;
};

// A rank that stopped: no heartbeat, or no step progress, for the hang timeout.
struct HungRank {
  int rank = 0;
  std::string node;
  std::string why;  // e.g. "no heartbeat for 31.0 s", "step 12 unchanged for 30.2 s".
  bool has_step = false;
  int64_t step = 0;
  std::string phase;
  std::string in_flight;
};

// Thread-safe.
class JobState {
 public:
  JobState(std::string job_id, std::vector<RankSlot> ranks, absl::Duration heartbeat_timeout);

  void RankStarted(int rank, int pid);
  // `state`: "exited" (0), "failed" (non-zero or a signal of its own), or "killed" (stopped
  // by zerorun).
  void RankExited(int rank, int exit_code, int signal, const std::string& state);
  void SetJobState(const std::string& state);
  void SetRootCause(const std::string& text);
  void SetMaxRestarts(int max_restarts);
  void SetEngine(const std::string& engine);  // JobStatusReply.engine.
  // The attempt that just ended failed with `exit_code` and the job starts attempt + 1: its root
  // cause is kept in failed_attempts, and the ranks, the key-value store and the root cause start
  // over (every rank of the failed attempt has exited, so no stale rendezvous key is read).
  void Restart(int exit_code);

  // A heartbeat, with step metrics when report.has_step(). InvalidArgument for a bad rank.
  absl::Status Report(const v1::RankReport& report);
  // The status `zerorun status` shows; ranks with a heartbeat older than the timeout are
  // "stale".
  v1::JobStatusReply Snapshot() const;

  // The rank to blame when some running rank has stopped for `timeout`: first one whose heartbeat
  // stopped, else one whose step stopped outside a collective, else any whose step stopped. A
  // step that stopped while another rank's heartbeats have gone quiet (more than
  // max(2 s, timeout / 2) old: beats come every second) is not judged yet: that rank, frozen or
  // dead, is the cause and is named once its heartbeat is `timeout` old.
  // Ranks that never reported are not judged (a program may not report at all). Also fills
  // *in_flight with "rank R: <collective>" for every rank inside a collective now.
  std::optional<HungRank> FindHung(absl::Duration timeout,
                                   std::vector<std::string>* in_flight) const;

  void Set(const std::string& key, const std::string& value);
  // Waits up to `timeout` for `key`; DeadlineExceeded naming the key when it never comes.
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout);

  // A stop asked through the Coordinator service (signal 0 = SIGTERM then SIGKILL).
  void RequestStop(int signal);
  // The pending stop request, if any, cleared by the call.
  std::optional<int> TakeStopRequest();
  bool stopping() const;

 private:
  struct Rank {
    RankSlot slot;
    v1::RankStatus status;
    std::optional<absl::Time> last_heartbeat;
    std::optional<absl::Time> last_step_change;
  };
  static Rank NewRank(const RankSlot& slot);  // "starting", nothing heard yet.
  mutable absl::Mutex mu_;
  const std::string job_id_;
  const absl::Duration heartbeat_timeout_;
  const absl::Time started_;
  std::vector<Rank> ranks_ ABSL_GUARDED_BY(mu_);
  std::string state_ ABSL_GUARDED_BY(mu_) = "starting";
  std::string root_cause_ ABSL_GUARDED_BY(mu_);
  int attempt_ ABSL_GUARDED_BY(mu_) = 0;
  int max_restarts_ ABSL_GUARDED_BY(mu_) = 0;
  std::string engine_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::FailedAttempt> failed_attempts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> kv_ ABSL_GUARDED_BY(mu_);
  std::optional<int> stop_request_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

class CoordinatorService final : public v1::Coordinator::Service {
 public:
  // `state` must outlive the server. Every call must carry `secret` (the job secret: the
  // launcher, `zerorun status`/`stop`) or a rank token of job `job_id` (RankToken: a rank, which
  // may use the KV store and report as itself only). Empty `secret`: no check.
  CoordinatorService(JobState* state, std::string job_id, std::string secret);
  grpc::Status Set(grpc::ServerContext* context, const v1::KeyValue* request,
                   v1::SetReply* reply) override;
  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest* request,
                   v1::KeyValue* reply) override;
  grpc::Status Report(grpc::ServerContext* context, const v1::RankReport* request,
                      v1::ReportReply* reply) override;
  grpc::Status JobStatus(grpc::ServerContext* context, const v1::JobStatusRequest* request,
                         v1::JobStatusReply* reply) override;
  grpc::Status Stop(grpc::ServerContext* context, const v1::StopRequest* request,
                    v1::StopReply* reply) override;

 private:
  static constexpr int kJobCaller = -1, kNobody = -2;
  // kJobCaller (the job secret), the rank of a valid rank token, or kNobody.
  int Caller(const grpc::ServerContext& context) const;

  JobState* state_;
  const std::string job_id_;
  const std::string secret_;
};

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_COORDINATOR_H_
