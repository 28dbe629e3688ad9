// AgentHandler: the node agent's calls, whoever makes them. The launcher's embedded agent (for
// hosts that are this machine, in-process) and zerorund's gRPC service (AgentService, once it
// has admitted the caller) are two adapters of this one handler, so the Watch loop and the logs
// path exist once. Thread-safe: calls may run concurrently (each Watch or Logs on its caller's
// thread); `agent` and `runner` are not owned and must outlive the handler.
#ifndef ZERORUN_WORKER_AGENT_HANDLER_H_
#define ZERORUN_WORKER_AGENT_HANDLER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "job_runner.h"
#include "node_agent.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

class AgentHandler {
 public:
  AgentHandler(const NodeAgent* agent, JobRunner* runner) : agent_(agent), runner_(runner) {}
  AgentHandler(const AgentHandler&) = delete;
  AgentHandler& operator=(const AgentHandler&) = delete;

  v1::ProbeReply Probe(const v1::ProbeRequest& request) const { return agent_->Probe(request); }
  // JobRunner::Launch: `owner` who asks, `run_as` the user a root zerorund runs the ranks as.
  absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request,
                                         const std::string& owner = "",
                                         const RunAs* run_as = nullptr) {
    return runner_->Launch(request, owner, run_as);
  }
  absl::StatusOr<int> Signal(const v1::SignalRequest& request) { return runner_->Signal(request); }
  // With `owner`, only that owner's jobs.
  v1::AgentStatusReply Status(const std::string& job_id,
                              const std::optional<std::string>& owner = std::nullopt) {
    return runner_->Status(job_id, owner);
  }

  // What a stream's reader gives the handler: `write` delivers one message (false: the reader
  // is gone); `cancelled` (may be null) says the reader stopped listening.
  template <typename Message>
  struct Reader {
    std::function<bool(const Message&)> write;
    std::function<bool()> cancelled;
  };

  // The job's events here from `from_index` on, until every rank here has exited and its events
  // are written (OK), the reader is cancelled (OK) or gone (Cancelled "client gone"), or
  // BeginShutdown (Unavailable "zerorund is restarting": the launcher reconnects to the next
  // zerorund). A KIND_HEARTBEAT after each second without a write. While it runs, the launcher's
  // lease on the job is renewed and the job's monitors hold back for this reader
  // (JobRunner::WatcherGuard). NotFound for an unknown job.
  absl::Status Watch(const std::string& job_id, int64_t from_index,
                     const Reader<v1::RankEvent>& reader);

  // The job's rank logs from its record on disk (so also after the runner forgot the job),
  // following them while a rank runs if asked. `owner` set: another owner's job is refused
  // (PermissionDenied). Errors name this node.
  absl::Status Logs(const v1::LogsRequest& request, const std::optional<std::string>& owner,
                    const Reader<v1::LogChunk>& reader);

  // Ends the open Watch and Logs streams (see Watch); any thread.
  void BeginShutdown() { shutting_down_ = true; }

 private:
  const NodeAgent* const agent_;
  JobRunner* const runner_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_AGENT_HANDLER_H_
