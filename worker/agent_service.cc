// NodeAgent gRPC handlers.
#include "agent_service.h"

#include <unistd.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "log_reader.h"
#include "rpc/grpc_util.h"
#include "run_as.h"
#include "security/local_cred.h"
#include "security/tls.h"

namespace zerorun::worker {

AgentService::AgentService(const NodeAgent* agent, JobRunner* runner, AgentAuth auth, AuditFn audit)
    : handler_(agent, runner), runner_(runner), auth_(std::move(auth)), audit_(std::move(audit)) {}

grpc::Status AgentService::Admit(const grpc::ServerContext& context, const char* method,
                                 const std::string& job_id, const std::string& detail, bool owned,
                                 Caller* who) {
  grpc::Status s = grpc::Status::OK;
  if (IsUnixPeer(context.peer())) {
    s = AdmitLocal(context, who);
  } else if (auth_.mtls) {
    s = AdmitCertificate(context, who);
  } else {
    s = CheckSecret(context, auth_.secret);
  }
  if (s.ok() && owned && !who->all_jobs && !job_id.empty()) {
    const std::optional<std::string> owner = runner_->Owner(job_id);
    if (owner.has_value() && *owner != who->name) {
      s = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                       absl::StrCat("job ", job_id, " is not ", who->name, "'s"));
    }
  }
  if (audit_ != nullptr) {
    // What the caller sent, cut and with control characters replaced (it is not validated yet).
    auto printable = [](std::string text) {
      text = text.substr(0, 200);
      for (char& c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
      return text;
    };
    audit_(absl::StrCat(
        "audit: ", method, " job=", job_id.empty() ? "-" : printable(job_id),
        detail.empty() ? "" : " ", printable(detail),
        auth_.mtls || who->local ? absl::StrCat(" user=", printable(who->name)) : "", " peer=",
        context.peer(), s.ok() ? " accepted" : absl::StrCat(" refused (", s.error_message(), ")")));
  }
  return s;
}

grpc::Status AgentService::AdmitCertificate(const grpc::ServerContext& context, Caller* who) const {
  const std::optional<CertIdentity> id = PeerIdentity(context);
  if (!id.has_value() || id->name.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no client certificate name");
  }
  who->name = id->name;
  if (!auth_.revoked.empty()) {
    // A certificate without a serial cannot be checked against the list: refused too.
    const absl::Status s = id->serial.empty()
                               ? absl::UnauthenticatedError("the certificate has no serial number")
                               : CheckNotRevoked(auth_.revoked, id->serial);
    if (absl::IsPermissionDenied(s) || absl::IsUnauthenticated(s)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(s.message()));
    }
    if (!s.ok()) return ToGrpcStatus(s);  // The list unusable: Unavailable, every call refused.
  }
  // Only a certificate issued for a user is that user: a node's, named like one, is no one.
  if (id->kind != CertKind::kUser) {
    who->name.clear();
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("the certificate of ", id->name, " (serial ", id->serial, ") is ",
                     id->kind == CertKind::kNode ? "a node's" : "not a user's",
                     ": calls need a user certificate. Fix: `zerorun cluster issue --user NAME` "
                     "and zerorun --tls-dir DIR/users/NAME"));
  }
  who->all_jobs = auth_.admins.count(who->name) > 0;
  return grpc::Status::OK;
}

grpc::Status AgentService::AdmitLocal(const grpc::ServerContext& context, Caller* who) const {
  if (auth_.local == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no local credentials here");
  }
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(kLocalCredMetadata);
  if (found == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("a call on zerorund's UNIX socket needs a local credential "
                                     "from ",
                                     auth_.local->path()));
  }
  absl::StatusOr<uid_t> uid =
      auth_.local->Verify(absl::string_view(found->second.data(), found->second.size()));
  if (!uid.ok()) return ToGrpcStatus(uid.status());
  who->local = true;
  who->uid = *uid;
  who->name = UserNameOf(*uid);
  who->all_jobs = *uid == 0 || *uid == geteuid() || auth_.admins.count(who->name) > 0;
  return grpc::Status::OK;
}

grpc::Status AgentService::Probe(grpc::ServerContext* context, const v1::ProbeRequest* request,
                                 v1::ProbeReply* reply) {
  Caller who;
  if (grpc::Status s = Admit(*context, "Probe", "", "", false, &who); !s.ok()) return s;
  *reply = handler_.Probe(*request);
  return grpc::Status::OK;
}

grpc::Status AgentService::Launch(grpc::ServerContext* context, const v1::LaunchRequest* request,
                                  v1::LaunchReply* reply) {
  const std::string argv0 =
      request->ranks().empty() || request->ranks(0).argv().empty() ? "" : request->ranks(0).argv(0);
  Caller who;
  if (grpc::Status s =
          Admit(*context, "Launch", request->job_id(),
                absl::StrCat("ranks=", request->ranks_size(), " argv0=", argv0), false, &who);
      !s.ok()) {
    return s;
  }
  // A root zerorund runs the ranks as the user the certificate or the UNIX socket names; any
  // other zerorund runs them as its own user, so only that user may launch over the socket.
  if (who.local && geteuid() != 0 && who.uid != geteuid()) {
    const std::string self = UserNameOf(geteuid());
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("zerorund on ", runner_->hostname(), " runs as ", self, " and runs ranks as ",
                     self, " only; ", who.name,
                     " may not launch here. Fix: run zerorund as root (it then runs each user's "
                     "ranks as that user), or launch as ",
                     self));
  }
  std::optional<RunAs> run_as;
  if ((auth_.mtls || who.local) && geteuid() == 0) {
    absl::StatusOr<RunAs> user = LookUpUser(who.name, runner_->hostname());
    if (!user.ok()) return ToGrpcStatus(absl::PermissionDeniedError(user.status().message()));
    run_as = *std::move(user);
  }
  absl::StatusOr<v1::LaunchReply> launched =
      handler_.Launch(*request, who.name, run_as.has_value() ? &*run_as : nullptr);
  if (!launched.ok()) return ToGrpcStatus(launched.status());
  *reply = *std::move(launched);
  return grpc::Status::OK;
}

grpc::Status AgentService::Signal(grpc::ServerContext* context, const v1::SignalRequest* request,
                                  v1::SignalReply* reply) {
  Caller who;
  if (grpc::Status s = Admit(*context, "Signal", request->job_id(),
                             absl::StrCat("signal=", request->signal()), true, &who);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<int> signalled = handler_.Signal(*request);
  if (!signalled.ok()) return ToGrpcStatus(signalled.status());
  reply->set_signalled(*signalled);
  return grpc::Status::OK;
}

grpc::Status AgentService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                 grpc::ServerWriter<v1::RankEvent>* writer) {
  Caller who;
  if (grpc::Status s = Admit(*context, "Watch", request->job_id(), "", true, &who); !s.ok())
    return s;
  return ToGrpcStatus(
      handler_.Watch(request->job_id(), request->from_index(),
                     {[&](const v1::RankEvent& event) { return writer->Write(event); },
                      [&] { return context->IsCancelled(); }}));
}

grpc::Status AgentService::Status(grpc::ServerContext* context,
                                  const v1::AgentStatusRequest* request,
                                  v1::AgentStatusReply* reply) {
  Caller who;
  if (grpc::Status s = Admit(*context, "Status", request->job_id(), "", true, &who); !s.ok())
    return s;
  *reply = handler_.Status(request->job_id(),
                           who.all_jobs ? std::nullopt : std::optional<std::string>(who.name));
  return grpc::Status::OK;
}

grpc::Status AgentService::Logs(grpc::ServerContext* context, const v1::LogsRequest* request,
                                grpc::ServerWriter<v1::LogChunk>* writer) {
  Caller who;
  if (grpc::Status s =
          Admit(*context, "Logs", request->job_id(), request->follow() ? "follow" : "", true, &who);
      !s.ok()) {
    return s;
  }
  return ToGrpcStatus(
      handler_.Logs(*request, who.all_jobs ? std::nullopt : std::optional<std::string>(who.name),
                    {[&](const v1::LogChunk& chunk) { return writer->Write(chunk); },
                     [&] { return context->IsCancelled(); }}));
}

}  // namespace zerorun::worker
