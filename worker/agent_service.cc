// NodeAgent gRPC handlers.
#include "agent_service.h"

#include "grpc_util.h"

namespace zerorun::worker {

AgentService::AgentService(const NodeAgent* agent, JobRunner* runner, std::string secret)
    : agent_(agent), runner_(runner), secret_(std::move(secret)) {}

grpc::Status AgentService::Probe(grpc::ServerContext* context, const v1::ProbeRequest* request,
                                 v1::ProbeReply* reply) {
  if (grpc::Status s = CheckSecret(*context, secret_); !s.ok()) return s;
  *reply = agent_->Probe(*request);
  return grpc::Status::OK;
}

grpc::Status AgentService::Launch(grpc::ServerContext* context, const v1::LaunchRequest* request,
                                  v1::LaunchReply* reply) {
  if (grpc::Status s = CheckSecret(*context, secret_); !s.ok()) return s;
  absl::StatusOr<v1::LaunchReply> launched = runner_->Launch(*request);
  if (!launched.ok()) return ToGrpcStatus(launched.status());
  *reply = *std::move(launched);
  return grpc::Status::OK;
}

grpc::Status AgentService::Signal(grpc::ServerContext* context, const v1::SignalRequest* request,
                                  v1::SignalReply* reply) {
  if (grpc::Status s = CheckSecret(*context, secret_); !s.ok()) return s;
  absl::StatusOr<int> signalled = runner_->Signal(*request);
  if (!signalled.ok()) return ToGrpcStatus(signalled.status());
  reply->set_signalled(*signalled);
  return grpc::Status::OK;
}

grpc::Status AgentService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                 grpc::ServerWriter<v1::RankEvent>* writer) {
  if (grpc::Status s = CheckSecret(*context, secret_); !s.ok()) return s;
  int64_t next = request->from_index();
  bool done = false;
  absl::Time last_write = absl::InfinitePast();
  while (!done && !context->IsCancelled()) {
    if (shutting_down_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "zerorund is restarting");
    }
    runner_->Renew(request->job_id());
    std::vector<v1::RankEvent> events;
    absl::Status s =
        runner_->WaitEvents(request->job_id(), next, absl::Milliseconds(200), &events, &done);
    if (!s.ok()) return ToGrpcStatus(s);
    for (const v1::RankEvent& event : events) {
      if (!writer->Write(event)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
      next = event.index() + 1;
      last_write = absl::Now();
    }
    if (!events.empty()) runner_->Renew(request->job_id());  // Still reading, if slowly.
    if (absl::Now() - last_write >= absl::Seconds(1)) {
      v1::RankEvent beat;
      beat.set_kind(v1::RankEvent::KIND_HEARTBEAT);
      beat.set_index(next);
      beat.set_time_unix_ms(absl::ToUnixMillis(absl::Now()));
      if (!writer->Write(beat)) return grpc::Status(grpc::StatusCode::CANCELLED, "client gone");
      last_write = absl::Now();
    }
  }
  return grpc::Status::OK;
}

grpc::Status AgentService::Status(grpc::ServerContext* context,
                                  const v1::AgentStatusRequest* request,
                                  v1::AgentStatusReply* reply) {
  if (grpc::Status s = CheckSecret(*context, secret_); !s.ok()) return s;
  *reply = runner_->Status(request->job_id());
  return grpc::Status::OK;
}

}  // namespace zerorun::worker
