// Embedded and gRPC implementations of AgentClient.
#include "backends/agent_client.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rpc/grpc_util.h"
#include "security/local_cred.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

namespace zerorun::launcher {
namespace {

// The embedded agent: the node agent's handler (worker/agent_handler.h) called in this process.
class EmbeddedAgentClient : public AgentClient {
 public:
  explicit EmbeddedAgentClient(worker::AgentHandler* handler) : handler_(handler) {}
  std::string Where() const override { return "in-process"; }
  absl::StatusOr<v1::ProbeReply> Probe(const v1::ProbeRequest& request) override {
    return handler_->Probe(request);
  }
  absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request) override {
    return handler_->Launch(request);
  }
  absl::StatusOr<int> Signal(const v1::SignalRequest& request) override {
    return handler_->Signal(request);
  }
  absl::StatusOr<v1::AgentStatusReply> Status(const std::string& job_id) override {
    return handler_->Status(job_id);
  }
  absl::Status Logs(const v1::LogsRequest& request,
                    const std::function<bool(const v1::LogChunk&)>& on_chunk) override {
    return handler_->Logs(request, std::nullopt, {on_chunk, nullptr});
  }
  absl::Status Watch(const std::string& job_id,
                     const std::function<void(const v1::RankEvent&)>& on_event,
                     const WatchPolicy& policy) override {
    // In this process the node is always heard from: every event and heartbeat says so.
    return handler_->Watch(job_id, 0,
                           {[&](const v1::RankEvent& event) {
                              if (policy.heard) policy.heard();
                              if (event.kind() != v1::RankEvent::KIND_HEARTBEAT) on_event(event);
                              return true;
                            },
                            nullptr});
  }

 private:
  worker::AgentHandler* const handler_;
};

class GrpcAgentClient : public AgentClient {
 public:
  GrpcAgentClient(const std::string& address, const ClientAuth& auth)
      : address_(address),
        secret_(auth.mtls() ? "" : auth.secret),
        local_cred_(
            UnixSocketPath(address).empty() ? "" : CredentialSocketPath(UnixSocketPath(address))),
        stub_(v1::NodeAgent::NewStub(
            grpc::CreateCustomChannel(address, auth.Credentials(), ClientChannelArgs()))) {}
  std::string Where() const override { return address_; }

  absl::StatusOr<v1::ProbeReply> Probe(const v1::ProbeRequest& request) override {
    v1::ProbeReply reply;
    return Call(&v1::NodeAgent::Stub::Probe, request, &reply, absl::Seconds(10), reply);
  }
  absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request) override {
    v1::LaunchReply reply;
    return Call(&v1::NodeAgent::Stub::Launch, request, &reply, absl::Seconds(30), reply);
  }
  absl::StatusOr<int> Signal(const v1::SignalRequest& request) override {
    v1::SignalReply reply;
    absl::StatusOr<v1::SignalReply> r =
        Call(&v1::NodeAgent::Stub::Signal, request, &reply, absl::Seconds(5), reply);
    if (!r.ok()) return r.status();
    return r->signalled();
  }
  absl::StatusOr<v1::AgentStatusReply> Status(const std::string& job_id) override {
    v1::AgentStatusRequest request;
    request.set_job_id(job_id);
    v1::AgentStatusReply reply;
    return Call(&v1::NodeAgent::Stub::Status, request, &reply, absl::Seconds(3), reply);
  }
  absl::Status Logs(const v1::LogsRequest& request,
                    const std::function<bool(const v1::LogChunk&)>& on_chunk) override {
    grpc::ClientContext context;
    if (absl::Status s = Authenticate(&context); !s.ok()) return s;
    std::unique_ptr<grpc::ClientReader<v1::LogChunk>> reader = stub_->Logs(&context, request);
    v1::LogChunk chunk;
    while (reader->Read(&chunk)) {
      if (!on_chunk(chunk)) {
        context.TryCancel();
        break;
      }
    }
    const grpc::Status status = reader->Finish();
    if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) return absl::OkStatus();
    return absl::Status(FromGrpcStatus(status).code(),
                        absl::StrCat("zerorund at ", address_, ": ", status.error_message()));
  }
  absl::Status Watch(const std::string& job_id,
                     const std::function<void(const v1::RankEvent&)>& on_event,
                     const WatchPolicy& policy) override {
    int64_t next = 0;
    absl::Mutex mu;
    absl::Time heard = absl::Now();           // Last message from the node (guarded by mu).
    std::optional<absl::Time> broken_since;   // Set while the stream is down.
    std::optional<absl::Time> host_answered;  // Last failure the node's kernel answered.
    absl::Duration backoff = absl::Milliseconds(100);
    while (true) {
      // One stream, watched for silence: a frozen zerorund or a cut link answers nothing, so the
      // missing heartbeats tell (a hanging reconnect is cut off when the silence runs out).
      grpc::ClientContext context;
      const absl::Status authenticated = Authenticate(&context);
      v1::WatchRequest request;
      request.set_job_id(job_id);
      request.set_from_index(next);
      const absl::Time attempt = absl::Now();
      bool finished = false, silenced = false, abandoned = false;
      std::thread watchdog([&] {
        absl::MutexLock lock(&mu);
        while (!finished) {
          if (policy.abandon != nullptr && policy.abandon->load()) {
            abandoned = true;
            context.TryCancel();
            return;
          }
          if (absl::Now() > std::max(heard + policy.silence, attempt + absl::Seconds(1))) {
            silenced = true;
            context.TryCancel();
            return;
          }
          mu.AwaitWithTimeout(absl::Condition(&finished), absl::Milliseconds(50));
        }
      });
      std::unique_ptr<grpc::ClientReader<v1::RankEvent>> reader =
          authenticated.ok() ? stub_->Watch(&context, request) : nullptr;
      v1::RankEvent event;
      while (reader != nullptr && reader->Read(&event)) {
        {
          absl::MutexLock lock(&mu);
          heard = absl::Now();
        }
        if (broken_since.has_value()) {
          Notice(policy, absl::StrFormat(
                             "reconnected to zerorund at %s after %.1f s; resuming from event #%d",
                             address_, absl::ToDoubleSeconds(absl::Now() - *broken_since), next));
          broken_since.reset();
          backoff = absl::Milliseconds(100);
        }
        if (policy.heard) policy.heard();
        if (event.kind() == v1::RankEvent::KIND_HEARTBEAT) continue;
        on_event(event);
        next = event.index() + 1;
      }
      // No credential from a local zerorund's socket: it is down (restarting), as a refused
      // connection would say.
      const grpc::Status status =
          reader != nullptr ? reader->Finish()
                            : grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           absl::StrCat("refused: ", authenticated.message()));
      absl::Time last_heard;
      {
        absl::MutexLock lock(&mu);
        finished = true;
        last_heard = heard;
      }
      watchdog.join();
      if (status.ok()) return absl::OkStatus();
      if (abandoned) {
        return absl::CancelledError(absl::StrCat("gave up on zerorund at ", address_));
      }
      const absl::Time now = absl::Now();
      const std::string error = silenced ? "no answer" : status.error_message();
      const grpc::StatusCode code = status.error_code();
      if (!silenced && code != grpc::StatusCode::UNAVAILABLE &&
          code != grpc::StatusCode::CANCELLED && code != grpc::StatusCode::UNKNOWN &&
          code != grpc::StatusCode::INTERNAL) {
        return absl::Status(FromGrpcStatus(status).code(),
                            absl::StrCat("zerorund at ", address_, ": ", error));
      }
      if (!silenced && HostAnswered(error)) host_answered = now;
      if (!broken_since.has_value()) {
        broken_since = now;
        Notice(policy,
               absl::StrFormat("lost contact with zerorund at %s (%s); reconnecting for "
                               "up to %.0f s",
                               address_, error, absl::ToDoubleSeconds(policy.reconnect_window)));
      }
      // The node's kernel refusing or resetting means zerorund is down (restarting): wait the
      // window. Nothing at all coming back means the node is frozen or cut off: lost now.
      const bool restarting = host_answered.has_value() && now - *host_answered < policy.silence;
      if (!restarting && now - last_heard >= policy.silence) {
        return absl::UnavailableError(absl::StrFormat(
            "no word from zerorund at %s for %.1f s (frozen, or the network to it is down; "
            "last error: %s)",
            address_, absl::ToDoubleSeconds(now - last_heard), error));
      }
      if (now - *broken_since > policy.reconnect_window) {
        return absl::UnavailableError(
            absl::StrFormat("zerorund at %s unreachable for %.1f s (%s)", address_,
                            absl::ToDoubleSeconds(now - *broken_since), error));
      }
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Milliseconds(500));
    }
  }

 private:
  // Errors that only a live host's kernel (or a stopping zerorund) gives.
  static bool HostAnswered(const std::string& error) {
    const std::string e = absl::AsciiStrToLower(error);
    for (const char* word : {"refused", "reset", "restarting", "socket closed", "broken pipe",
                             "end of tcp stream", "goaway"}) {
      if (absl::StrContains(e, word)) return true;
    }
    return false;
  }
  static void Notice(const WatchPolicy& policy, const std::string& text) {
    if (policy.notice) policy.notice(text);
  }

  template <typename Method, typename Request, typename Reply>
  absl::StatusOr<Reply> Call(Method method, const Request& request, Reply* reply,
                             absl::Duration timeout, const Reply&) {
    grpc::ClientContext context;
    if (absl::Status s = Authenticate(&context); !s.ok()) return s;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    const grpc::Status status = ((*stub_).*method)(&context, request, reply);
    if (!status.ok()) {
      return absl::Status(FromGrpcStatus(status).code(),
                          absl::StrCat("zerorund at ", address_, ": ", status.error_message()));
    }
    return *reply;
  }

  // The call's credentials: the secret, and over a UNIX socket a fresh local credential (they
  // live a minute; one per call costs a local connect).
  absl::Status Authenticate(grpc::ClientContext* context) const {
    AttachSecret(context, secret_);
    if (local_cred_.empty()) return absl::OkStatus();
    absl::StatusOr<std::string> credential = FetchLocalCredential(local_cred_);
    if (!credential.ok()) return credential.status();
    context->AddMetadata(kLocalCredMetadata, *credential);
    return absl::OkStatus();
  }

  const std::string address_;
  const std::string secret_;
  const std::string local_cred_;  // The credential socket of a unix: address, else "".
  std::unique_ptr<v1::NodeAgent::Stub> stub_;
};

}  // namespace

std::unique_ptr<AgentClient> NewEmbeddedAgentClient(worker::AgentHandler* handler) {
  return std::make_unique<EmbeddedAgentClient>(handler);
}

std::unique_ptr<AgentClient> NewGrpcAgentClient(const std::string& address,
                                                const ClientAuth& auth) {
  return std::make_unique<GrpcAgentClient>(address, auth);
}

AgentPool::AgentPool(const worker::NodeAgent* agent, worker::JobRunner* runner, ClientAuth auth,
                     bool embedded)
    : agent_(agent), handler_(agent, runner), auth_(std::move(auth)), embedded_(embedded) {}

AgentClient* AgentPool::For(const Host& host) {
  const bool embedded = Embedded(host);
  const std::string key = embedded ? "" : AgentTarget(host);
  absl::MutexLock lock(&mu_);
  std::unique_ptr<AgentClient>& client = clients_[key];
  if (client == nullptr) {
    client = embedded ? NewEmbeddedAgentClient(&handler_) : NewGrpcAgentClient(key, auth_);
  }
  return client.get();
}

std::string AgentTarget(const Host& host) {
  if (IsUnixSocketAddress(host.address)) return host.address;
  return absl::StrCat(host.address, ":", host.agent_port);
}

bool UsesEmbeddedAgent(const Host& host) {
  const std::string& a = host.address;
  if (a == "localhost" || a == "127.0.0.1" || a == "::1") return true;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return false;
  return a == name;
}

}  // namespace zerorun::launcher
