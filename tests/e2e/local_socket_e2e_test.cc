// e2e: zerorund's UNIX socket (issue 13). Local users call as themselves: the kernel names the
// caller (SO_PEERCRED on the credential socket), a root zerorund runs their ranks as them, a
// non-root one only its own user's, and nobody sees or signals another user's job. Real
// zerorund and zerorun processes; the users are made by the test (root only).
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "security/local_cred.h"
#include "support/child_process.h"
#include "support/local_user.h"
#include "support/socket_agent.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

namespace zerorun::testing {
namespace {

int Mode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

TEST_CASE(
    "zerorund serves a UNIX socket: a local launch over it runs as the caller's job, calls without "
    "a kernel-issued credential are refused, a stale socket is replaced and a file never",
    "[e2e][auth][local]") {
  // Root launching here is root's ranks: allowed for this test only.
  SocketAgent agent(nullptr, geteuid() == 0 ? std::vector<std::string>{"--allow-root-ranks"}
                                            : std::vector<std::string>{});
  CHECK(Mode(agent.socket) == 0666);
  CHECK(Mode(CredentialSocketPath(agent.socket)) == 0666);
  CHECK_THAT(agent.agent->Output(), Catch::Contains("local users on unix:" + agent.socket));
  const RunResult launched = agent.Launch(nullptr, "job-local");
  INFO(launched.out + launched.err);
  REQUIRE(launched.exit_code == 0);
  const std::string me = getpwuid(geteuid())->pw_name;
  CHECK_THAT(agent.agent->Output(), Catch::Contains("audit: Launch job=job-local") &&
                                        Catch::Contains("user=" + me + " peer=unix:"));
  // No credential, or one this zerorund did not issue: refused, naming where to get one.
  v1::AgentStatusReply reply;
  const grpc::Status bare = StatusWith(agent, "", "", &reply);
  CHECK(bare.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(bare.error_message(), Catch::Contains(CredentialSocketPath(agent.socket)));
  const grpc::Status forged = StatusWith(agent, "u0.99999999999.00ff", "", &reply);
  CHECK(forged.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(forged.error_message(), Catch::Contains("not issued by this zerorund"));
  absl::StatusOr<std::string> mine = FetchLocalCredential(CredentialSocketPath(agent.socket));
  REQUIRE(mine.ok());
  REQUIRE(StatusWith(agent, *mine, "job-local", &reply).ok());
  CHECK(reply.ranks_size() == 1);

  // zerorund killed: its sockets stay behind, and the next one replaces them (stale), and the
  // credential of the dead one is worth nothing.
  agent.agent->Signal(SIGKILL);
  agent.agent->Wait(10);
  REQUIRE(std::filesystem::exists(agent.socket));
  agent.Start(geteuid() == 0 ? std::vector<std::string>{"--allow-root-ranks"}
                             : std::vector<std::string>{});
  CHECK(StatusWith(agent, *mine, "", &reply).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(agent.Launch(nullptr, "job-again").exit_code == 0);

  // A file where the socket would go is not replaced: zerorund refuses to start.
  const std::string file = agent.dir.Write("keep.txt", "mine\n");
  const RunResult refused =
      Run({ZR_TEST_ZERORUND, "--listen", "127.0.0.2:0", "--anonymous-tcp", "--state-dir",
           agent.dir.path() + "/state2", "--unix-socket", file},
          {}, "", 10);
  CHECK(refused.exit_code == 69);
  CHECK_THAT(refused.err, Catch::Contains(file) && Catch::Contains("is not a socket"));
  CHECK(std::filesystem::file_size(file) == 5);
}

TEST_CASE(
    "A root zerorund runs a local user's ranks as that user over the UNIX socket, another user "
    "cannot see, watch or signal them, root sees all and may not run root ranks",
    "[e2e][auth][local][runas]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (zerorund drops to the user only as root; the test makes users)");
    return;
  }
  LocalUser alice(Alice()), bob(Bob());
  REQUIRE(alice.uid != 0);
  REQUIRE(bob.uid != 0);
  SocketAgent agent;
  const std::string envs = agent.dir.path() + "/envs";
  std::filesystem::create_directory(envs);
  chmod(envs.c_str(), 01777);
  auto launched = std::async(std::launch::async, [&] {
    return agent.Launch(&alice, "job-alice", 3000, {"--env-dir", envs});
  });
  int pid = 0;
  for (int i = 0; i < 200 && pid == 0; ++i) {
    std::ifstream in(envs + "/rank_0.pid");
    if (!(in >> pid)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(pid > 0);
  CHECK(ProcUid(pid) == static_cast<int>(alice.uid));

  const std::string cred_path = CredentialSocketPath(agent.socket);
  const std::string as_alice = CredentialAs(alice, cred_path);
  const std::string as_bob = CredentialAs(bob, cred_path);
  v1::AgentStatusReply reply;
  REQUIRE(StatusWith(agent, as_alice, "job-alice", &reply).ok());
  CHECK(reply.ranks_size() == 1);
  const grpc::Status seen = StatusWith(agent, as_bob, "job-alice", &reply);
  CHECK(seen.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(seen.error_message(), Catch::Contains("job job-alice is not " + bob.name + "'s"));
  reply.Clear();
  REQUIRE(StatusWith(agent, as_bob, "", &reply).ok());
  CHECK(reply.ranks_size() == 0);  // Every job: none of bob's.
  reply.Clear();
  const absl::StatusOr<std::string> as_root = FetchLocalCredential(cred_path);
  REQUIRE(as_root.ok());
  REQUIRE(StatusWith(agent, *as_root, "", &reply).ok());
  CHECK(reply.ranks_size() == 1);  // Root sees every job.
  {
    grpc::ClientContext context;
    context.AddMetadata(kLocalCredMetadata, as_bob);
    v1::SignalRequest request;
    request.set_job_id("job-alice");
    request.set_signal(SIGKILL);
    v1::SignalReply signal_reply;
    const grpc::Status s = agent.Stub()->Signal(&context, request, &signal_reply);
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    context.AddMetadata(kLocalCredMetadata, as_bob);
    v1::WatchRequest request;
    request.set_job_id("job-alice");
    auto reader = agent.Stub()->Watch(&context, request);
    v1::RankEvent event;
    CHECK_FALSE(reader->Read(&event));
    CHECK(reader->Finish().error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(ProcUid(pid) == static_cast<int>(alice.uid));  // Still running: bob's signal did nothing.
  const RunResult done = launched.get();
  INFO(done.out + done.err);
  CHECK(done.exit_code == 0);
  CHECK_THAT(agent.agent->Output(),
             Catch::Contains("audit: Signal job=job-alice signal=9 user=" + bob.name));
  // The logs after the job ended: alice's to read, not bob's (the owner is in the record on disk).
  std::string alice_sees, bob_sees;
  CHECK(LogsWith(agent, CredentialAs(alice, cred_path), "job-alice", &alice_sees).ok());
  const grpc::Status bob_logs =
      LogsWith(agent, CredentialAs(bob, cred_path), "job-alice", &bob_sees);
  CHECK(bob_logs.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(bob_sees.empty());
  // Root over the socket: its ranks would run as root, which this zerorund refuses.
  const RunResult root = agent.Launch(nullptr, "job-root");
  CHECK(root.exit_code == 69);
  CHECK_THAT(root.out + root.err, Catch::Contains("the ranks would run as root: refused"));
}

TEST_CASE(
    "A zerorund that is not root runs only its own user's ranks: another local user's launch "
    "over the UNIX socket is refused with the fix",
    "[e2e][auth][local][runas]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (the test makes the users)");
    return;
  }
  LocalUser alice(Alice()), bob(Bob());
  SocketAgent agent(&alice, {"--no-cgroups"});
  const RunResult refused = agent.Launch(&bob, "job-bob");
  CHECK(refused.exit_code != 0);
  CHECK_THAT(refused.out + refused.err, Catch::Contains("runs ranks as " + alice.name + " only; " +
                                                        bob.name + " may not launch here"));
  CHECK_FALSE(std::filesystem::exists(agent.state + "/job-bob"));
  const RunResult own = agent.Launch(&alice, "job-own");
  INFO(own.out + own.err);
  CHECK(own.exit_code == 0);
}

}  // namespace
}  // namespace zerorun::testing
