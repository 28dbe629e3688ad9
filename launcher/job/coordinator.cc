// JobState and the Coordinator gRPC handlers.
#include "job/coordinator.h"

#include <algorithm>
#include <csignal>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rpc/grpc_util.h"

namespace zerorun::launcher {

JobState::Rank JobState::NewRank(const RankSlot& slot) {
  JobState::Rank r;
  r.slot = slot;
  r.status.set_rank(slot.rank);
  r.status.set_local_rank(slot.local_rank);
  r.status.set_node(slot.node);
  r.status.set_state("starting");
  return r;
}

JobState::JobState(std::string job_id, std::vector<RankSlot> ranks,
                   absl::Duration heartbeat_timeout)
    : job_id_(std::move(job_id)), heartbeat_timeout_(heartbeat_timeout), started_(absl::Now()) {
  for (const RankSlot& slot : ranks) ranks_.push_back(NewRank(slot));
}

void JobState::SetMaxRestarts(int max_restarts) {
  absl::MutexLock lock(&mu_);
  max_restarts_ = max_restarts;
}

void JobState::SetEngine(const std::string& engine) {
  absl::MutexLock lock(&mu_);
  engine_ = engine;
}

void JobState::Restart(int exit_code) {
  absl::MutexLock lock(&mu_);
  v1::FailedAttempt& failed = failed_attempts_.emplace_back();
  failed.set_attempt(attempt_);
  failed.set_exit_code(exit_code);
  failed.set_root_cause(root_cause_);
  failed.set_ended_unix_ms(absl::ToUnixMillis(absl::Now()));
  ++attempt_;
  root_cause_.clear();
  kv_.clear();
  stopping_ = false;  // A stop asked meanwhile stays pending: it ends the next attempt at once.
  state_ = "restarting";
  for (Rank& r : ranks_) r = NewRank(r.slot);
}

void JobState::RankStarted(int rank, int pid) {
  absl::MutexLock lock(&mu_);
  if (rank < 0 || rank >= static_cast<int>(ranks_.size())) return;
  ranks_[rank].status.set_pid(pid);
  ranks_[rank].status.set_state("running");
}

void JobState::RankExited(int rank, int exit_code, int signal, const std::string& state) {
  absl::MutexLock lock(&mu_);
  if (rank < 0 || rank >= static_cast<int>(ranks_.size())) return;
  ranks_[rank].status.set_exit_code(exit_code);
  ranks_[rank].status.set_signal(signal);
  ranks_[rank].status.set_state(state);
}

void JobState::SetJobState(const std::string& state) {
  absl::MutexLock lock(&mu_);
  state_ = state;
}

void JobState::SetRootCause(const std::string& text) {
  absl::MutexLock lock(&mu_);
  root_cause_ = text;
}

absl::Status JobState::Report(const v1::RankReport& report) {
  absl::MutexLock lock(&mu_);
  if (report.rank() < 0 || report.rank() >= static_cast<int>(ranks_.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", report.rank(), " is not in this job of ", ranks_.size(), " ranks"));
  }
  Rank& r = ranks_[report.rank()];
  r.last_heartbeat = absl::Now();
  if (!report.phase().empty()) r.status.set_phase(report.phase());
  if (report.total_steps() > 0) r.status.set_total_steps(report.total_steps());
  r.status.set_in_flight(report.in_flight());
  if (report.has_step() && (!r.last_step_change || report.step() != r.status.step())) {
    r.last_step_change = absl::Now();
  }
  if (report.has_step()) {
    r.status.set_step(report.step());
    r.status.set_loss(report.loss());
    r.status.set_tokens_per_second(report.tokens_per_second());
    r.status.set_memory_bytes(report.memory_bytes());
  }
  if (report.has_step_times()) *r.status.mutable_step_times() = report.step_times();
  return absl::OkStatus();
}

v1::JobStatusReply JobState::Snapshot() const {
  absl::MutexLock lock(&mu_);
  v1::JobStatusReply reply;
  reply.set_job_id(job_id_);
  reply.set_state(state_);
  reply.set_started_unix_ms(absl::ToUnixMillis(started_));
  reply.set_world_size(static_cast<int>(ranks_.size()));
  reply.set_root_cause(root_cause_);
  reply.set_attempt(attempt_);
  reply.set_max_restarts(max_restarts_);
  reply.set_engine(engine_);
  for (const v1::FailedAttempt& failed : failed_attempts_) *reply.add_failed_attempts() = failed;
  const absl::Time now = absl::Now();
  for (const Rank& r : ranks_) {
    v1::RankStatus* s = reply.add_ranks();
    *s = r.status;
    s->set_heartbeat_age_s(r.last_heartbeat ? absl::ToDoubleSeconds(now - *r.last_heartbeat) : -1);
    s->set_step_age_s(r.last_step_change ? absl::ToDoubleSeconds(now - *r.last_step_change) : -1);
    if (s->state() == "running" && r.last_heartbeat &&
        now - *r.last_heartbeat > heartbeat_timeout_) {
      s->set_state("stale");
    }
  }
  return reply;
}

std::optional<HungRank> JobState::FindHung(absl::Duration timeout,
                                           std::vector<std::string>* in_flight) const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  const absl::Duration quiet = std::max(absl::Seconds(2), timeout / 2);
  std::optional<HungRank> silent, outside, inside;
  bool going_quiet = false;
  for (const Rank& r : ranks_) {
    if (r.status.state() != "running" || !r.last_heartbeat) continue;
    going_quiet = going_quiet || now - *r.last_heartbeat > quiet;
    if (!r.status.in_flight().empty()) {
      in_flight->push_back(absl::StrCat("rank ", r.slot.rank, ": ", r.status.in_flight()));
    }
    HungRank hung{
        r.slot.rank,      r.slot.node,         "", r.last_step_change.has_value(), r.status.step(),
        r.status.phase(), r.status.in_flight()};
    if (now - *r.last_heartbeat > timeout) {
      hung.why = absl::StrFormat("no heartbeat for %.1f s",
                                 absl::ToDoubleSeconds(now - *r.last_heartbeat));
      if (!silent) silent = hung;
    } else if (r.last_step_change && now - *r.last_step_change > timeout) {
      hung.why = absl::StrFormat("step %d unchanged for %.1f s (last heartbeat %.1f s ago)",
                                 r.status.step(), absl::ToDoubleSeconds(now - *r.last_step_change),
                                 absl::ToDoubleSeconds(now - *r.last_heartbeat));
      std::optional<HungRank>& slot = hung.in_flight.empty() ? outside : inside;
      if (!slot) slot = hung;
    }
  }
  if (silent) return silent;
  if (going_quiet) return std::nullopt;  // The quiet rank is named when it is silent.
  return outside ? outside : inside;
}

void JobState::Set(const std::string& key, const std::string& value) {
  absl::MutexLock lock(&mu_);
  kv_[key] = value;
}

absl::StatusOr<std::string> JobState::Get(const std::string& key, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  struct Args {
    const std::map<std::string, std::string>* kv;
    const std::string* key;
  } args{&kv_, &key};
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Args* a) { return a->kv->count(*a->key) > 0; }, &args),
                       timeout);
  auto it = kv_.find(key);
  if (it == kv_.end()) {
    return absl::DeadlineExceededError(
        absl::StrCat("key '", key, "' was not set within ", absl::FormatDuration(timeout)));
  }
  return it->second;
}

void JobState::RequestStop(int signal) {
  absl::MutexLock lock(&mu_);
  stop_request_ = signal;
}

std::optional<int> JobState::TakeStopRequest() {
  absl::MutexLock lock(&mu_);
  std::optional<int> request = stop_request_;
  stop_request_.reset();
  if (request) stopping_ = true;
  return request;
}

bool JobState::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

CoordinatorService::CoordinatorService(JobState* state, std::string job_id, std::string secret)
    : state_(state), job_id_(std::move(job_id)), secret_(std::move(secret)) {}

int CoordinatorService::Caller(const grpc::ServerContext& context) const {
  if (secret_.empty()) return kJobCaller;
  const std::string presented = CallSecret(context);
  if (ConstantTimeEquals(presented, secret_)) return kJobCaller;
  const int rank = RankOfToken(secret_, job_id_, presented);
  return rank >= 0 ? rank : kNobody;
}

namespace {

grpc::Status Unauthenticated() {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or wrong job secret or rank token (x-zerorun-secret): ranks use "
                      "the ZERORUN_JOB_SECRET zerorun gave them");
}

grpc::Status RanksMayNot(const char* what) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat("a rank token cannot ", what, " (that needs the job secret)"));
}

}  // namespace

grpc::Status CoordinatorService::Set(grpc::ServerContext* context, const v1::KeyValue* request,
                                     v1::SetReply*) {
  if (Caller(*context) == kNobody) return Unauthenticated();
  state_->Set(request->key(), request->value());
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Get(grpc::ServerContext* context, const v1::GetRequest* request,
                                     v1::KeyValue* reply) {
  if (Caller(*context) == kNobody) return Unauthenticated();
  absl::StatusOr<std::string> value =
      state_->Get(request->key(), absl::Milliseconds(request->timeout_ms()));
  if (!value.ok()) return ToGrpcStatus(value.status());
  reply->set_key(request->key());
  reply->set_value(*value);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Report(grpc::ServerContext* context, const v1::RankReport* request,
                                        v1::ReportReply* reply) {
  const int caller = Caller(*context);
  if (caller == kNobody) return Unauthenticated();
  if (caller != kJobCaller && caller != request->rank()) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("rank ", caller, "'s token cannot report as rank ", request->rank()));
  }
  if (absl::Status s = state_->Report(*request); !s.ok()) return ToGrpcStatus(s);
  reply->set_stop_requested(state_->stopping());
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::JobStatus(grpc::ServerContext* context,
                                           const v1::JobStatusRequest*, v1::JobStatusReply* reply) {
  const int caller = Caller(*context);
  if (caller == kNobody) return Unauthenticated();
  if (caller != kJobCaller) return RanksMayNot("read the job's status");
  *reply = state_->Snapshot();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Stop(grpc::ServerContext* context, const v1::StopRequest* request,
                                      v1::StopReply*) {
  const int caller = Caller(*context);
  if (caller == kNobody) return Unauthenticated();
  if (caller != kJobCaller) return RanksMayNot("stop the job");
  if (request->signal() < 0 || request->signal() > SIGRTMAX) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("signal ", request->signal(), " is outside 1-", SIGRTMAX,
                                     " (0: the default, SIGTERM)"));
  }
  state_->RequestStop(request->signal());
  return grpc::Status::OK;
}

}  // namespace zerorun::launcher
