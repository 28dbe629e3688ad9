// Embedded and gRPC implementations of AgentClient.
#include "agent_client.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "grpc_util.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

namespace zerorun::launcher {
namespace {

class EmbeddedAgentClient : public AgentClient {
 public:
  EmbeddedAgentClient(const worker::NodeAgent* agent, worker::JobRunner* runner)
      : agent_(agent), runner_(runner) {}
  std::string Where() const override { return "in-process"; }
  absl::StatusOr<v1::ProbeReply> Probe(const v1::ProbeRequest& request) override {
    return agent_->Probe(request);
  }
  absl::StatusOr<v1::LaunchReply> Launch(const v1::LaunchRequest& request) override {
    return runner_->Launch(request);
  }
  absl::StatusOr<int> Signal(const v1::SignalRequest& request) override {
    return runner_->Signal(request);
  }
  absl::Status Watch(const std::string& job_id,
                     const std::function<void(const v1::RankEvent&)>& on_event) override {
    int64_t next = 0;
    bool done = false;
    while (!done) {
      std::vector<v1::RankEvent> events;
      absl::Status s = runner_->WaitEvents(job_id, next, absl::Milliseconds(200), &events, &done);
      if (!s.ok()) return s;
      for (const v1::RankEvent& event : events) {
        on_event(event);
        next = event.index() + 1;
      }
    }
    return absl::OkStatus();
  }

 private:
  const worker::NodeAgent* agent_;
  worker::JobRunner* runner_;
};

class GrpcAgentClient : public AgentClient {
 public:
  GrpcAgentClient(const std::string& address, const std::string& secret)
      : address_(address),
        secret_(secret),
        stub_(v1::NodeAgent::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}
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
  absl::Status Watch(const std::string& job_id,
                     const std::function<void(const v1::RankEvent&)>& on_event) override {
    int64_t next = 0;
    // A broken stream is retried from the last event seen until the node stays unreachable.
    for (int attempt = 0; attempt < 3; ++attempt) {
      grpc::ClientContext context;
      AttachSecret(&context, secret_);
      v1::WatchRequest request;
      request.set_job_id(job_id);
      request.set_from_index(next);
      std::unique_ptr<grpc::ClientReader<v1::RankEvent>> reader = stub_->Watch(&context, request);
      v1::RankEvent event;
      while (reader->Read(&event)) {
        on_event(event);
        next = event.index() + 1;
        attempt = 0;
      }
      const grpc::Status status = reader->Finish();
      if (status.ok()) return absl::OkStatus();
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return FromGrpcStatus(status);
      usleep(200 * 1000);
    }
    return absl::UnavailableError(absl::StrCat("lost contact with zerorund at ", address_));
  }

 private:
  template <typename Method, typename Request, typename Reply>
  absl::StatusOr<Reply> Call(Method method, const Request& request, Reply* reply,
                             absl::Duration timeout, const Reply&) {
    grpc::ClientContext context;
    AttachSecret(&context, secret_);
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    const grpc::Status status = ((*stub_).*method)(&context, request, reply);
    if (!status.ok()) {
      return absl::Status(FromGrpcStatus(status).code(),
                          absl::StrCat("zerorund at ", address_, ": ", status.error_message()));
    }
    return *reply;
  }

  const std::string address_;
  const std::string secret_;
  std::unique_ptr<v1::NodeAgent::Stub> stub_;
};

}  // namespace

std::unique_ptr<AgentClient> NewEmbeddedAgentClient(const worker::NodeAgent* agent,
                                                    worker::JobRunner* runner) {
  return std::make_unique<EmbeddedAgentClient>(agent, runner);
}

std::unique_ptr<AgentClient> NewGrpcAgentClient(const std::string& address,
                                                const std::string& secret) {
  return std::make_unique<GrpcAgentClient>(address, secret);
}

AgentPool::AgentPool(const worker::NodeAgent* agent, worker::JobRunner* runner, std::string secret)
    : agent_(agent), runner_(runner), secret_(std::move(secret)) {}

AgentClient* AgentPool::For(const Host& host) {
  const bool embedded = UsesEmbeddedAgent(host);
  const std::string key = embedded ? "" : absl::StrCat(host.address, ":", host.agent_port);
  absl::MutexLock lock(&mu_);
  std::unique_ptr<AgentClient>& client = clients_[key];
  if (client == nullptr) {
    client = embedded ? NewEmbeddedAgentClient(agent_, runner_) : NewGrpcAgentClient(key, secret_);
  }
  return client.get();
}

bool UsesEmbeddedAgent(const Host& host) {
  const std::string& a = host.address;
  if (a == "localhost" || a == "127.0.0.1" || a == "::1") return true;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return false;
  return a == name;
}

}  // namespace zerorun::launcher
