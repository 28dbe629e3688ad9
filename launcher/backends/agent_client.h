// How the launcher talks to a node's agent: in-process (the embedded agent, for hosts that are
// this machine) or over gRPC to that node's zerorund. Same calls, same errors.
#ifndef ZERORUN_LAUNCHER_BACKENDS_AGENT_CLIENT_H_
#define ZERORUN_LAUNCHER_BACKENDS_AGENT_CLIENT_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent_handler.h"
#include "inputs/hostfile.h"
#include "job_runner.h"
#include "node_agent.h"
#include "security/tls.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::launcher {

// How a Watch tells a node that is slow from one that is gone.
struct WatchPolicy {
  // No word from the node (an event or its heartbeat every second) this long on an open stream:
  // it is frozen or unreachable, and lost.
  absl::Duration silence = absl::Seconds(9);
  // A broken stream (zerorund restarting or crashed) is reopened, resuming from the next event,
  // for this long before the node is lost.
  absl::Duration reconnect_window = absl::Seconds(30);
  // Progress lines for the user: contact lost, reconnected. May be empty.
  std::function<void(const std::string&)> notice;
  // Called whenever the node is heard from (an event or a heartbeat). May be empty.
  std::function<void()> heard;
  // Set by the caller to give up on the node now (Cancelled).
  const std::atomic<bool>* abandon = nullptr;
};

class AgentClient {
 public:
  virtual ~AgentClient() = default;
  // "in-process" or "host:port".
  virtual std::string Where() const = 0;
  // Errors: Unavailable (not reachable), Unauthenticated (secret), DeadlineExceeded.
  virtual absl::StatusOr<v1::ProbeReply> Probe(const v1::ProbeRequest& request) = 0;
  virtual absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request) = 0;
  virtual absl::StatusOr<int> Signal(const v1::SignalRequest& request) = 0;
  virtual absl::StatusOr<v1::AgentStatusReply> Status(const std::string& job_id) = 0;
  // Streams the job's rank logs on that node to on_chunk (false: stop) until they are read (with
  // follow: until its ranks there exited).
  virtual absl::Status Logs(const v1::LogsRequest& request,
                            const std::function<bool(const v1::LogChunk&)>& on_chunk) = 0;
  // Calls `on_event` for every event of `job_id` (heartbeats excluded) until the job's ranks on
  // this node have all exited (OK), or the node is lost under `policy` (Unavailable naming the
  // node's address, how long it was silent or unreachable, and the last error). While it runs,
  // the launcher's lease on the node's ranks is renewed. Blocks.
  virtual absl::Status Watch(const std::string& job_id,
                             const std::function<void(const v1::RankEvent&)>& on_event,
                             const WatchPolicy& policy) = 0;
};

// The agent inside this process: the node agent's handler, which zerorund's gRPC service adapts
// too (worker/agent_handler.h). `handler` must outlive the client.
std::unique_ptr<AgentClient> NewEmbeddedAgentClient(worker::AgentHandler* handler);

// zerorund at `address` ("host:port"), over mTLS or with the shared secret (ClientAuth).
std::unique_ptr<AgentClient> NewGrpcAgentClient(const std::string& address, const ClientAuth& auth);

// True when `host` is served by the embedded agent: its address is localhost, 127.0.0.1, ::1 or
// this machine's name. Other loopback addresses (127.0.0.2, ...) are separate nodes with their
// own zerorund, as in the multi-node tests.
bool UsesEmbeddedAgent(const Host& host);

// One client per host, created on first use: embedded for this machine, gRPC otherwise.
// Thread-safe.
class AgentPool {
 public:
  // `agent` and `runner` must outlive the pool; `auth` is how every gRPC client authenticates.
  // Without `embedded`, every host is reached through its zerorund, this machine's too.
  AgentPool(const worker::NodeAgent* agent, worker::JobRunner* runner, ClientAuth auth,
            bool embedded = true);
  AgentClient* For(const Host& host);
  // True when `host` is served by the embedded agent (UsesEmbeddedAgent, if allowed).
  bool Embedded(const Host& host) const { return embedded_ && UsesEmbeddedAgent(host); }
  const worker::NodeAgent& local_agent() const { return *agent_; }

 private:
  const worker::NodeAgent* agent_;
  worker::AgentHandler handler_;  // The embedded agent's (this machine's hosts).
  const ClientAuth auth_;
  const bool embedded_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<AgentClient>> clients_ ABSL_GUARDED_BY(mu_);
};

// The gRPC target of `host`'s zerorund: "address:agent_port", or the address itself when it is a
// UNIX socket ("unix:/var/lib/zerorun/zerorund.sock": this machine's zerorund, called as
// the local user running the launcher).
std::string AgentTarget(const Host& host);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_BACKENDS_AGENT_CLIENT_H_
