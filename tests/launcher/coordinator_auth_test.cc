// The coordinator's authorization over a real gRPC server on loopback: the job secret may do
// everything, a rank token (what each rank gets in ZERORUN_JOB_SECRET) only the KV store and
// Reports as its own rank, anything else nothing; Stop's signal is validated. Also the loopback
// decision on resolved addresses and the secret-file permission check.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <memory>
#include <string>

#include "job/coordinator.h"
#include "rpc/grpc_util.h"
#include "security/auth.h"
#include "support/temp_dir.h"
#include "zerorun/v1/coordinator.grpc.pb.h"

namespace zerorun::launcher {
namespace {

struct Served {
  Served() : state("job-7", {RankSlot{}, RankSlot{}, RankSlot{}}, absl::Seconds(60)) {
    service = std::make_unique<CoordinatorService>(&state, "job-7", secret);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    stub = v1::Coordinator::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                        grpc::InsecureChannelCredentials()));
  }
  ~Served() { server->Shutdown(); }
  // Report as `rank` with credential `token`.
  grpc::Status Report(const std::string& token, int rank) {
    grpc::ClientContext context;
    AttachSecret(&context, token);
    v1::RankReport report;
    report.set_rank(rank);
    report.set_step(5);
    v1::ReportReply reply;
    return stub->Report(&context, report, &reply);
  }
  grpc::Status Stop(const std::string& token, int signal) {
    grpc::ClientContext context;
    AttachSecret(&context, token);
    v1::StopRequest request;
    request.set_signal(signal);
    v1::StopReply reply;
    return stub->Stop(&context, request, &reply);
  }
  grpc::Status Status(const std::string& token) {
    grpc::ClientContext context;
    AttachSecret(&context, token);
    v1::JobStatusReply reply;
    return stub->JobStatus(&context, v1::JobStatusRequest(), &reply);
  }
  grpc::Status Set(const std::string& token) {
    grpc::ClientContext context;
    AttachSecret(&context, token);
    v1::KeyValue kv;
    kv.set_key("k");
    kv.set_value("v");
    v1::SetReply reply;
    return stub->Set(&context, kv, &reply);
  }

  const std::string secret = NewSecret();
  JobState state;
  std::unique_ptr<CoordinatorService> service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::Coordinator::Stub> stub;
};

TEST_CASE("A rank token reports as its own rank only, and cannot stop the job or read its status",
          "[launcher][auth]") {
  Served c;
  const std::string token1 = RankToken(c.secret, "job-7", 1);
  CHECK(token1.rfind("r1.", 0) == 0);
  CHECK(token1.find(c.secret) == std::string::npos);  // The job secret is not in it.
  CHECK(c.Report(token1, 1).ok());
  CHECK(c.Set(token1).ok());
  const grpc::Status as_other = c.Report(token1, 2);
  CHECK(as_other.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(as_other.error_message(), Catch::Contains("rank 1's token cannot report as rank 2"));
  CHECK(c.Stop(token1, 15).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(c.Status(token1).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_FALSE(c.state.TakeStopRequest().has_value());
  // Tokens of another job, another secret, or forged ones are nobody's.
  for (const std::string& bad :
       {RankToken(c.secret, "job-8", 1), RankToken(NewSecret(), "job-7", 1), std::string("r1.00"),
        std::string("r1"), std::string(""), token1 + "0"}) {
    INFO(bad);
    CHECK(c.Report(bad, 1).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(c.Set(bad).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
  // The job secret (the launcher, `zerorun status` and `stop`) may do all of it.
  CHECK(c.Report(c.secret, 2).ok());
  CHECK(c.Status(c.secret).ok());
  const grpc::Status bad_signal = c.Stop(c.secret, 12345);
  CHECK(bad_signal.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(bad_signal.error_message(), Catch::Contains("signal 12345 is outside"));
  CHECK(c.Stop(c.secret, -1).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_FALSE(c.state.TakeStopRequest().has_value());
  CHECK(c.Stop(c.secret, 15).ok());
  CHECK(c.state.TakeStopRequest() == 15);
}

TEST_CASE("Loopback is decided on the resolved addresses, not the spelling", "[launcher][auth]") {
  for (const char* yes : {"127.0.0.1:29600", "127.0.0.2:1", "[::1]:5", "localhost:29600", "::1"}) {
    INFO(yes);
    CHECK(IsLoopbackListenAddress(yes));
  }
  for (const char* no : {"127.evil.example:29600", "0.0.0.0:29600", "[::]:1", "10.1.2.3:4",
                         "127.0.0.1.nip.io:80", ":29600", "", "localhost.:1x"}) {
    INFO(no);
    CHECK_FALSE(IsLoopbackListenAddress(no));
  }
}

TEST_CASE("A secret file group or others may read is refused with the fix", "[launcher][auth]") {
  testing::TempDir dir;
  const std::string path = dir.Write("secret", "s3cret\n");
  chmod(path.c_str(), 0644);
  absl::StatusOr<std::string> open = ReadSecretFile(path);
  CHECK(open.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK_THAT(std::string(open.status().message()),
             Catch::Contains("mode 0644") && Catch::Contains("Fix: chmod 600 " + path));
  chmod(path.c_str(), 0620);
  CHECK_THAT(std::string(ReadSecretFile(path).status().message()), Catch::Contains("write"));
  chmod(path.c_str(), 0600);
  REQUIRE(ReadSecretFile(path).ok());
  CHECK(*ReadSecretFile(path) == "s3cret");
  CHECK(ReadSecretFile(dir.path() + "/none").status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace zerorun::launcher
