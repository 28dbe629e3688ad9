// CoordinatorClient over gRPC (Coordinator service, job secret in the call metadata).
#include "zerorun/coordinator_client.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "base/rank_env.h"
#include "rpc/grpc_util.h"
#include "zerorun/flight_recorder.h"
#include "zerorun/kv_store.h"
#include "zerorun/v1/coordinator.grpc.pb.h"

namespace zerorun {

struct CoordinatorClient::Impl {
  std::string address;
  std::string secret;
  std::unique_ptr<v1::Coordinator::Stub> stub;
  zerorun::Mutex mu;
  bool has_step ABSL_GUARDED_BY(mu) = false;
  int64_t step ABSL_GUARDED_BY(mu) = 0;
  double loss ABSL_GUARDED_BY(mu) = 0;
  double tokens_per_second ABSL_GUARDED_BY(mu) = 0;
  int64_t memory_bytes ABSL_GUARDED_BY(mu) = 0;
  bool has_times ABSL_GUARDED_BY(mu) = false;
  StepTimes times ABSL_GUARDED_BY(mu);
  std::string phase ABSL_GUARDED_BY(mu);
  int64_t total_steps ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;

  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const {
    auto context = std::make_unique<grpc::ClientContext>();
    AttachSecret(context.get(), secret);
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return context;
  }
};

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::FromEnv() {
  const char* address = std::getenv(rank_env::kCoordinator);
  const char* secret = std::getenv(rank_env::kJobSecret);
  const char* rank_text = std::getenv(rank_env::kRank);
  int rank = 0;
  if (address == nullptr || *address == '\0') {
    return absl::FailedPreconditionError("ZERORUN_COORDINATOR is not set: not started by zerorun");
  }
  if (rank_text == nullptr || !absl::SimpleAtoi(rank_text, &rank)) {
    return absl::FailedPreconditionError("RANK is not set to an integer: not started by zerorun");
  }
  const char* ca = std::getenv(rank_env::kCoordinatorCa);
  return std::make_unique<CoordinatorClient>(address, secret ? secret : "", rank, ca ? ca : "");
}

CoordinatorClient::CoordinatorClient(std::string address, std::string secret, int rank,
                                     std::string ca_pem)
    : impl_(std::make_unique<Impl>()), rank_(rank) {
  impl_->address = std::move(address);
  impl_->secret = std::move(secret);
  impl_->stub = v1::Coordinator::NewStub(CoordinatorChannel(impl_->address, ca_pem));
}

CoordinatorClient::~CoordinatorClient() {
  {
    zerorun::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  if (heartbeat_.joinable()) heartbeat_.join();
}

absl::Status CoordinatorClient::Set(const std::string& key, const std::string& value) {
  v1::KeyValue request;
  request.set_key(key);
  request.set_value(value);
  v1::SetReply reply;
  return FromGrpcStatus(impl_->stub->Set(impl_->Context(absl::Seconds(10)).get(), request, &reply));
}

absl::StatusOr<std::string> CoordinatorClient::Get(const std::string& key, absl::Duration timeout) {
  v1::GetRequest request;
  request.set_key(key);
  request.set_timeout_ms(absl::ToInt64Milliseconds(timeout));
  v1::KeyValue reply;
  const grpc::Status status =
      impl_->stub->Get(impl_->Context(timeout + absl::Seconds(5)).get(), request, &reply);
  if (!status.ok()) return FromGrpcStatus(status);
  return reply.value();
}

absl::Status CoordinatorClient::Send(bool with_step) {
  v1::RankReport request;
  {
    zerorun::MutexLock lock(&impl_->mu);
    request.set_rank(rank_);
    request.set_phase(impl_->phase);
    request.set_total_steps(impl_->total_steps);
    request.set_in_flight(FlightRecorder::Global().InFlight());
    if (with_step || impl_->has_step) {
      request.set_has_step(impl_->has_step);
      request.set_step(impl_->step);
      request.set_loss(impl_->loss);
      request.set_tokens_per_second(impl_->tokens_per_second);
      request.set_memory_bytes(impl_->memory_bytes);
    }
    if (impl_->has_times) {
      v1::StepTimes* t = request.mutable_step_times();
      t->set_seconds(impl_->times.seconds);
      t->set_compute_s(impl_->times.compute);
      t->set_comm_wait_s(impl_->times.comm_wait);
      t->set_optimizer_s(impl_->times.optimizer);
      t->set_io_s(impl_->times.io);
    }
  }
  v1::ReportReply reply;
  const grpc::Status status =
      impl_->stub->Report(impl_->Context(absl::Seconds(2)).get(), request, &reply);
  if (status.ok() && reply.stop_requested()) stop_requested_ = true;
  return FromGrpcStatus(status);
}

absl::Status CoordinatorClient::Heartbeat() { return Send(false); }

absl::Status CoordinatorClient::ReportStep(int64_t step, double loss, double tokens_per_second,
                                           int64_t memory_bytes, const StepTimes* times) {
  {
    zerorun::MutexLock lock(&impl_->mu);
    impl_->has_times = times != nullptr;
    if (times != nullptr) impl_->times = *times;
    impl_->has_step = true;
    impl_->step = step;
    impl_->loss = loss;
    impl_->tokens_per_second = tokens_per_second;
    impl_->memory_bytes = memory_bytes;
  }
  return Send(true);
}

void CoordinatorClient::SetTotalSteps(int64_t total_steps) {
  zerorun::MutexLock lock(&impl_->mu);
  impl_->total_steps = total_steps;
}

void CoordinatorClient::SetPhase(const std::string& phase) {
  zerorun::MutexLock lock(&impl_->mu);
  impl_->phase = phase;
}

void CoordinatorClient::StartHeartbeat(absl::Duration interval) {
  if (heartbeat_.joinable()) return;
  heartbeat_ = std::thread([this, interval] {
    zerorun::MutexLock lock(&impl_->mu);
    while (!impl_->stopping) {
      impl_->mu.Unlock();
      (void)Heartbeat();  // A missed beat shows as heartbeat age in `zerorun status`.
      impl_->mu.Lock();
      impl_->mu.AwaitWithTimeout(zerorun::Condition(&impl_->stopping), interval);
    }
  });
}

// CoordinatorKvStore (zerorun/kv_store.h) lives here, beside the client it forwards to: the
// stores of zr_comm stay free of gRPC.
absl::Status CoordinatorKvStore::Set(const std::string& key, const std::string& value) {
  return client_->Set(key, value);
}

absl::StatusOr<std::string> CoordinatorKvStore::Get(const std::string& key,
                                                    absl::Duration timeout) {
  return client_->Get(key, timeout);
}

}  // namespace zerorun
