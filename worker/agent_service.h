// AgentService: zerorund's gRPC adapter of the node agent (AgentHandler, which the launcher's
// embedded agent adapts too). Thin: admits the caller (secret, certificate or UNIX socket user),
// audits every call, converts, and never blocks on a child process.
#ifndef ZERORUN_WORKER_AGENT_SERVICE_H_
#define ZERORUN_WORKER_AGENT_SERVICE_H_

#include <atomic>
#include <functional>
#include <set>
#include <string>

#include "agent_handler.h"
#include "job_runner.h"
#include "node_agent.h"
#include "security/local_cred.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

namespace zerorun::worker {

// How zerorund authenticates and authorizes its callers.
struct AgentAuth {
  std::string secret;  // Plaintext: the shared secret every call carries ("": none, loopback).
  // mTLS: gRPC verified the caller's certificate against the cluster CA; its common name is who
  // calls (and, when zerorund runs as root, the local user its ranks run as). A job belongs to
  // whoever launched it: Signal, Watch and Status of it are theirs (and `admins`'), and Status of
  // every job lists only theirs. Without mTLS every caller is one.
  bool mtls = false;
  std::set<std::string> admins;
  std::string revoked;  // mTLS: a revocation list (`zerorun cluster revoke`), read on every call.
  // The UNIX socket's credentials (not owned; null when zerorund serves no UNIX socket). A call
  // over the UNIX socket must carry one, and is the local user it names (jobs are theirs as with
  // mTLS; root and zerorund's own user see all). A root zerorund runs their ranks as them, any
  // other only its own user's.
  const LocalCredentialServer* local = nullptr;
};

class AgentService final : public v1::NodeAgent::Service {
 public:
  // One audit line: "audit: <Method> job=<id> [<detail>] peer=<address> accepted|refused (<why>)".
  using AuditFn = std::function<void(const std::string& line)>;
  // `agent` and `runner` are not owned and must outlive the server. `audit`, when set, hears of
  // every call, accepted or refused, before it runs.
  AgentService(const NodeAgent* agent, JobRunner* runner, AgentAuth auth, AuditFn audit = nullptr);

  grpc::Status Probe(grpc::ServerContext* context, const v1::ProbeRequest* request,
                     v1::ProbeReply* reply) override;
  grpc::Status Launch(grpc::ServerContext* context, const v1::LaunchRequest* request,
                      v1::LaunchReply* reply) override;
  grpc::Status Signal(grpc::ServerContext* context, const v1::SignalRequest* request,
                      v1::SignalReply* reply) override;
  // Streams events until the job's ranks here have all exited or the client goes away, with a
  // heartbeat every second; while it is open the launcher's lease on the job is renewed.
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::RankEvent>* writer) override;
  grpc::Status Status(grpc::ServerContext* context, const v1::AgentStatusRequest* request,
                      v1::AgentStatusReply* reply) override;
  // The job's rank logs from its record on disk (so also after zerorund forgot the job), its
  // owner checked against that record.
  grpc::Status Logs(grpc::ServerContext* context, const v1::LogsRequest* request,
                    grpc::ServerWriter<v1::LogChunk>* writer) override;

  // Ends open Watch streams with UNAVAILABLE ("zerorund is restarting"), so launchers reconnect
  // to the next zerorund instead of treating the end as the job's.
  void BeginShutdown() { handler_.BeginShutdown(); }

 private:
  struct Caller {
    std::string name;  // mTLS: the certificate's common name; UNIX socket: the user; else "".
    bool all_jobs = true;
    bool local = false;  // Over the UNIX socket, as `uid`.
    uid_t uid = 0;
  };
  // Checks the call's credentials and, with `owned`, that the caller may act on `job_id`; audits
  // the decision; fills *who.
  grpc::Status Admit(const grpc::ServerContext& context, const char* method,
                     const std::string& job_id, const std::string& detail, bool owned, Caller* who);

  // Admit's check of an mTLS call: a user certificate, not revoked, names the user.
  grpc::Status AdmitCertificate(const grpc::ServerContext& context, Caller* who) const;
  // Admit's check of a call over the UNIX socket: its local credential names the user.
  grpc::Status AdmitLocal(const grpc::ServerContext& context, Caller* who) const;

  AgentHandler handler_;
  JobRunner* runner_;
  const AgentAuth auth_;
  const AuditFn audit_;
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_AGENT_SERVICE_H_
