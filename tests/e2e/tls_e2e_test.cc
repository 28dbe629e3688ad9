// e2e: mTLS between zerorun and zerorund (issue 13). `zerorun cluster init` makes a CA and
// certificates; zerorund --tls-dir serves only clients with a certificate of that CA, names
// each job's owner from it, and lets only the owner (or an --admin) see and signal a job.
// Negative cases: plaintext, another CA, an expired certificate, a node certificate for another
// address; each refused with nothing started. Real zerorund processes on 127.0.0.2. And the job's
// coordinator: TLS only, with a certificate of the job's own CA that its ranks and record carry.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_ca.h"
#include "nlohmann/json.hpp"
#include "rpc/grpc_util.h"
#include "security/tls.h"
#include "support/child_process.h"
#include "support/local_user.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "zerorun/v1/coordinator.grpc.pb.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

namespace zerorun::testing {
namespace {

int Mode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// A cluster directory (CA, node 127.0.0.2 and 127.0.0.3, users Alice(), Bob(), admin:
// local accounts made for the test when it runs as root, where ranks run as them) and a zerorund
// on 127.0.0.2 serving mTLS with `node` (default its own certificate).
struct TlsCluster {
  // `users` beyond those three; `allow_root`: zerorund --allow-root-ranks.
  explicit TlsCluster(const std::string& node = "127.0.0.2",
                      const std::vector<std::string>& users = {}, bool allow_root = true,
                      bool revocation = false) {
    if (geteuid() == 0) {
      for (const std::string& name : {Alice(), Bob()}) {
        accounts.push_back(std::make_unique<LocalUser>(name));
      }
    }
    std::vector<std::string> init = {ZR_TEST_ZERORUN, "cluster", "init",      ca,       "--node",
                                     "127.0.0.2",     "--node",  "127.0.0.3", "--user", Alice(),
                                     "--user",        Bob(),     "--user",    "admin"};
    for (const std::string& user : users) init.insert(init.end(), {"--user", user});
    const RunResult made = Run(init, {});
    INFO(made.err);
    REQUIRE(made.exit_code == 0);
    chmod(dir.path().c_str(), 0711);  // Ranks running as users reach their job directories.
    // Copies users can run: the supervisor and the rank run as the certificate's user.
    std::vector<std::string> argv = {
        UsersCanRun(ZR_TEST_ZERORUND), "--listen", "127.0.0.2:0", "--tls-dir",
        ca + "/nodes/" + node,         "--admin",  "admin"};
    if (allow_root) argv.push_back("--allow-root-ranks");
    if (revocation) argv.insert(argv.end(), {"--revoked", ca + "/revoked"});
    agent = std::make_unique<ChildProcess>(
        argv, std::map<std::string, std::string>{{"ZR_HOME", dir.path() + "/agent-home"}});
    REQUIRE(agent->WaitForOutput("(port ", 10));
    std::smatch m;
    const std::string out = agent->Output();
    REQUIRE(std::regex_search(out, m, std::regex("\\(port (\\d+)\\)")));
    port = m[1].str();
    hosts = dir.Write("hosts.yaml", "hosts:\n  - {name: node-a, address: 127.0.0.2, agent_port: " +
                                        port + ", slots: 2}\n");
    config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  }
  // zerorun run as the user whose credentials are in `tls_dir` ("" : plaintext).
  RunResult Launch(const std::string& tls_dir, const std::string& job_id, int run_ms = 100,
                   const std::vector<std::string>& zerorun_args = {},
                   const std::vector<std::string>& rank_args = {}) {
    std::vector<std::string> argv = {ZR_TEST_ZERORUN, "--hostfile", hosts,      "--config", config,
                                     "--device",      "cpu",        "--job-id", job_id};
    if (!tls_dir.empty()) argv.insert(argv.end(), {"--tls-dir", tls_dir});
    argv.insert(argv.end(), zerorun_args.begin(), zerorun_args.end());
    argv.insert(argv.end(), {UsersCanRun(ZR_TEST_RANK), "--run-ms", std::to_string(run_ms)});
    argv.insert(argv.end(), rank_args.begin(), rank_args.end());
    // The ranks' working directory is the launcher's: one the certificate's user may enter.
    const std::string home = dir.path() + "/home-" + job_id;
    std::filesystem::create_directories(home);
    chmod(home.c_str(), 0755);
    return Run(argv, {{"ZR_HOME", home}}, home);
  }
  std::unique_ptr<v1::NodeAgent::Stub> Stub(const std::string& user) const {
    absl::StatusOr<TlsFiles> files = ReadTlsDir(ca + "/users/" + user);
    ClientAuth auth;
    if (files.ok()) auth.tls = *files;
    return v1::NodeAgent::NewStub(grpc::CreateChannel("127.0.0.2:" + port, auth.Credentials()));
  }

  std::vector<std::unique_ptr<LocalUser>> accounts;  // Outlive the agent (declared first).
  TempDir dir;
  const std::string ca = dir.path() + "/cluster";
  std::unique_ptr<ChildProcess> agent;
  std::string port, hosts, config;
};

TEST_CASE(
    "zerorun cluster init makes a CA and certificates with private keys, and never overwrites",
    "[e2e][auth][tls]") {
  TempDir dir;
  const std::string ca = dir.path() + "/cluster";
  const RunResult init =
      Run({ZR_TEST_ZERORUN, "cluster", "init", ca, "--node", "10.1.2.3", "--user", Alice()}, {});
  REQUIRE(init.exit_code == 0);
  CHECK(Mode(ca) == 0700);
  CHECK(Mode(ca + "/ca.key") == 0600);
  CHECK(Mode(ca + "/nodes/10.1.2.3/cert.key") == 0600);
  CHECK(Mode(ca + "/users/" + Alice() + "/cert.key") == 0600);
  CHECK(Mode(ca + "/users/" + Alice()) == 0700);
  CHECK(std::filesystem::exists(ca + "/users/" + Alice() + "/ca.crt"));
  const RunResult again = Run({ZR_TEST_ZERORUN, "cluster", "init", ca}, {});
  CHECK(again.exit_code == 73);
  CHECK_THAT(again.err, Catch::Contains("holds a cluster CA already"));
  const RunResult twice = Run({ZR_TEST_ZERORUN, "cluster", "issue", ca, "--user", Alice()}, {});
  CHECK(twice.exit_code == 73);
  CHECK_THAT(twice.err, Catch::Contains(Alice() + " has a certificate"));
  const RunResult bad = Run({ZR_TEST_ZERORUN, "cluster", "issue", ca, "--user", "a/b"}, {});
  CHECK(bad.exit_code == 2);
  CHECK(Run({ZR_TEST_ZERORUN, "cluster", "issue", ca, "--user", Bob()}, {}).exit_code == 0);
  // A key others may read is refused by both ends.
  chmod((ca + "/users/" + Bob() + "/cert.key").c_str(), 0644);
  const RunResult open_key =
      Run({ZR_TEST_ZERORUND, "--listen", "127.0.0.2:0", "--tls-dir", ca + "/users/" + Bob()}, {});
  CHECK(open_key.exit_code == 77);
  CHECK_THAT(open_key.err, Catch::Contains("Fix: chmod 600"));
}

TEST_CASE(
    "A job runs over mTLS as the user of the client certificate, while plaintext, another CA, an "
    "expired certificate and a node certificate for another address are refused",
    "[e2e][auth][tls]") {
  TlsCluster cluster;
  const RunResult ok = cluster.Launch(cluster.ca + "/users/" + Alice(), "job-alice");
  INFO(ok.out + ok.err);
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.out + ok.err, Catch::Contains("succeeded: all 2 rank(s) exited 0"));
  CHECK(std::regex_search(
      cluster.agent->Output(),
      std::regex("audit: Launch job=job-alice ranks=2 argv0=[^ ]+ user=" + Alice() +
                 " "
                 "peer=ipv4:127\\.0\\.0\\.1:[0-9]+ accepted")));
  // Plaintext: no TLS handshake, nothing started.
  const RunResult plain = cluster.Launch("", "job-plain");
  CHECK(plain.exit_code == 69);
  CHECK_THAT(plain.out + plain.err, Catch::Contains("node-a"));
  // A certificate of another cluster's CA.
  TempDir other;
  REQUIRE(Run({ZR_TEST_ZERORUN, "cluster", "init", other.path() + "/c", "--user", Alice()}, {})
              .exit_code == 0);
  const RunResult other_ca = cluster.Launch(other.path() + "/c/users/" + Alice(), "job-other-ca");
  CHECK(other_ca.exit_code == 77);  // The launcher sees the node's certificate fail its CA.
  CHECK_THAT(other_ca.out, Catch::Contains("TLS with the agent at 127.0.0.2") &&
                               Catch::Contains("Fix: a --tls-dir of this cluster's CA"));
  // An expired certificate of the right CA.
  REQUIRE(launcher::IssueCertificate(cluster.ca, launcher::CertKind::kUser, "carol",
                                     launcher::Validity{-7200, -3600})
              .ok());
  // zerorund ends the handshake: the launcher sees the connection closed.
  CHECK(cluster.Launch(cluster.ca + "/users/carol", "job-expired").exit_code == 69);
  const std::string log = cluster.agent->Output();
  CHECK_THAT(log, !Catch::Contains("job=job-plain") && !Catch::Contains("job=job-other-ca") &&
                      !Catch::Contains("job=job-expired"));
  // The launcher checks the node's certificate names the address it dialled.
  TlsCluster impostor("127.0.0.3");
  const RunResult wrong_name = impostor.Launch(impostor.ca + "/users/" + Alice(), "job-impostor");
  CHECK(wrong_name.exit_code == 77);
  CHECK_THAT(wrong_name.out, Catch::Contains("names 127.0.0.2"));
  CHECK_THAT(impostor.agent->Output(), !Catch::Contains("job=job-impostor"));
}

TEST_CASE("Another user's certificate can neither see, watch nor signal a job, an admin's can",
          "[e2e][auth][tls]") {
  TlsCluster cluster;
  auto launched = std::async(std::launch::async, [&] {
    return cluster.Launch(cluster.ca + "/users/" + Alice(), "job-a", 4000);
  });
  auto alice = cluster.Stub(Alice()), bob = cluster.Stub(Bob()), admin = cluster.Stub("admin");
  auto ranks_seen = [](v1::NodeAgent::Stub* stub, const std::string& job) {
    grpc::ClientContext context;
    v1::AgentStatusRequest request;
    request.set_job_id(job);
    v1::AgentStatusReply reply;
    const grpc::Status s = stub->Status(&context, request, &reply);
    return s.ok() ? reply.ranks_size() : -1;
  };
  for (int i = 0; i < 100 && ranks_seen(alice.get(), "") < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(ranks_seen(alice.get(), "") == 2);
  CHECK(ranks_seen(admin.get(), "") == 2);
  CHECK(ranks_seen(bob.get(), "") == 0);        // Every job: none of bob's.
  CHECK(ranks_seen(bob.get(), "job-a") == -1);  // This one: refused.
  {
    grpc::ClientContext context;
    v1::SignalRequest request;
    request.set_job_id("job-a");
    request.set_signal(9);
    v1::SignalReply reply;
    const grpc::Status s = bob->Signal(&context, request, &reply);
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(s.error_message(), Catch::Contains("job job-a is not " + Bob() + "'s"));
  }
  {
    grpc::ClientContext context;
    v1::WatchRequest request;
    request.set_job_id("job-a");
    auto reader = bob->Watch(&context, request);
    v1::RankEvent event;
    CHECK_FALSE(reader->Read(&event));
    CHECK(reader->Finish().error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  CHECK(ranks_seen(alice.get(), "job-a") == 2);  // Still running: bob's signal went nowhere.
  const RunResult done = launched.get();
  CHECK(done.exit_code == 0);
  CHECK_THAT(cluster.agent->Output(),
             Catch::Contains("audit: Signal job=job-a signal=9 user=" + Bob()) &&
                 Catch::Contains("refused (job job-a is not " + Bob() + "'s)"));
}

TEST_CASE("A revoked certificate is refused from the next call on, the others still served",
          "[e2e][auth][tls]") {
  TlsCluster cluster("127.0.0.2", {}, true, /*revocation=*/true);
  auto status = [&](const std::string& user) {
    grpc::ClientContext context;
    v1::AgentStatusReply reply;
    return cluster.Stub(user)->Status(&context, v1::AgentStatusRequest(), &reply);
  };
  REQUIRE(status(Bob()).ok());
  const RunResult revoked =
      Run({ZR_TEST_ZERORUN, "cluster", "revoke", cluster.ca, "--user", Bob()}, {});
  INFO(revoked.err);
  REQUIRE(revoked.exit_code == 0);
  const grpc::Status refused = status(Bob());
  CHECK(refused.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(refused.error_message(),
             Catch::Contains("the certificate of " + Bob()) && Catch::Contains("is revoked"));
  CHECK(status(Alice()).ok());
  CHECK(cluster.Launch(cluster.ca + "/users/" + Bob(), "job-revoked").exit_code == 77);
  CHECK(cluster.Launch(cluster.ca + "/users/" + Alice(), "job-still").exit_code == 0);
  CHECK(Run({ZR_TEST_ZERORUN, "cluster", "revoke", cluster.ca, "--user", "nobody-zr"}, {})
            .exit_code == 66);
  // The list unreadable, a directory, or not a list: zerorund refuses every call instead of
  // serving revoked certificates.
  const std::string list = cluster.ca + "/revoked";
  std::filesystem::remove(list);
  CHECK(status(Alice()).error_code() == grpc::StatusCode::UNAVAILABLE);
  std::filesystem::create_directory(list);
  const grpc::Status directory = status(Alice());
  CHECK(directory.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(directory.error_message(), Catch::Contains("is not a regular file"));
  std::filesystem::remove(list);
  std::ofstream(list) << "this is not a revocation list\n";
  CHECK(status(Alice()).error_code() == grpc::StatusCode::UNAVAILABLE);
  std::ofstream(list, std::ios::trunc) << "# revoked\n\n";
  CHECK(status(Alice()).ok());
}

TEST_CASE(
    "A node certificate named like a user is no user: its calls are refused, the user's own "
    "certificate is served",
    "[e2e][auth][tls]") {
  TlsCluster cluster;
  // The CA's operator issued a node certificate whose name happens to be alice's.
  const RunResult issued =
      Run({ZR_TEST_ZERORUN, "cluster", "issue", cluster.ca, "--node", Alice()}, {});
  INFO(issued.err);
  REQUIRE(issued.exit_code == 0);
  auto stub_for = [&](const std::string& tls_dir) {
    absl::StatusOr<TlsFiles> files = ReadTlsDir(tls_dir);
    REQUIRE(files.ok());
    ClientAuth auth;
    auth.tls = *files;
    return v1::NodeAgent::NewStub(
        grpc::CreateChannel("127.0.0.2:" + cluster.port, auth.Credentials()));
  };
  auto launched = std::async(std::launch::async, [&] {
    return cluster.Launch(cluster.ca + "/users/" + Alice(), "job-alice-own", 3000);
  });
  grpc::Status seen;
  v1::AgentStatusReply reply;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext context;
    reply.Clear();
    v1::AgentStatusRequest request;
    request.set_job_id("job-alice-own");
    seen = stub_for(cluster.ca + "/users/" + Alice())->Status(&context, request, &reply);
    if (seen.ok() && reply.ranks_size() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(reply.ranks_size() > 0);  // Alice's own certificate sees her job.
  for (const char* method : {"Status", "Signal"}) {
    INFO(method);
    grpc::ClientContext context;
    grpc::Status s;
    auto node = stub_for(cluster.ca + "/nodes/" + Alice());
    if (std::string(method) == "Status") {
      v1::AgentStatusRequest request;
      request.set_job_id("job-alice-own");
      s = node->Status(&context, request, &reply);
    } else {
      v1::SignalRequest request;
      request.set_job_id("job-alice-own");
      request.set_signal(SIGKILL);
      v1::SignalReply signalled;
      s = node->Signal(&context, request, &signalled);
    }
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(s.error_message(), Catch::Contains("is a node's: calls need a user certificate"));
  }
  const RunResult done = launched.get();
  INFO(done.out + done.err);
  CHECK(done.exit_code == 0);  // Not killed by the node certificate's Signal.
  CHECK_THAT(cluster.agent->Output(),
             Catch::Contains("audit: Signal job=job-alice-own") && Catch::Contains("is a node's"));
  CHECK(cluster.Launch(cluster.ca + "/nodes/" + Alice(), "job-as-node").exit_code != 0);
}

TEST_CASE(
    "A root zerorund runs an mTLS user's ranks as that local user, and refuses a log_dir the user "
    "cannot write, a user missing on the node, and root",
    "[e2e][auth][tls][runas]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (zerorund drops to the user only as root; the test makes users)");
    return;
  }
  TlsCluster cluster("127.0.0.2", {"root", "zrtest-nobody"}, /*allow_root=*/false);
  const LocalUser& alice = *cluster.accounts[0];
  REQUIRE(alice.uid != 0);
  const std::string envs = cluster.dir.path() + "/envs";
  std::filesystem::create_directory(envs);
  chmod(envs.c_str(), 01777);
  auto launched = std::async(std::launch::async, [&] {
    return cluster.Launch(cluster.ca + "/users/" + alice.name, "job-as-alice", 1500, {},
                          {"--env-dir", envs});
  });
  int pid = 0;
  for (int i = 0; i < 100 && pid == 0; ++i) {
    std::ifstream in(envs + "/rank_0.pid");
    if (!(in >> pid)) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(pid > 0);
  CHECK(ProcUid(pid) == static_cast<int>(alice.uid));
  const RunResult done = launched.get();
  INFO(done.out + done.err);
  CHECK(done.exit_code == 0);
  std::ifstream env(envs + "/rank_0.env");
  const std::string text((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("\nUSER=" + alice.name + "\n") &&
                       Catch::Contains("\nLOGNAME=" + alice.name + "\n"));
  struct stat st {};
  const std::string log = cluster.dir.path() + "/agent-home/agent/job-as-alice/rank_0/stdout.log";
  REQUIRE(stat(log.c_str(), &st) == 0);
  CHECK(st.st_uid == alice.uid);
  CHECK((st.st_mode & 0777) == 0600);
  // A log_dir alice may not write: refused as alice, before anything is made there as root.
  const std::string closed = cluster.dir.path() + "/closed";
  std::filesystem::create_directory(closed);
  chmod(closed.c_str(), 0700);
  const RunResult no_logs = cluster.Launch(cluster.ca + "/users/" + alice.name, "job-closed", 100,
                                           {"--log-dir", closed + "/logs"});
  CHECK(no_logs.exit_code == 69);
  CHECK_THAT(no_logs.out + no_logs.err,
             Catch::Contains("user " + alice.name + " may not use log_dir path " + closed));
  CHECK(std::filesystem::is_empty(closed));
  // A certificate whose user does not exist on the node, and one for root.
  const RunResult nobody = cluster.Launch(cluster.ca + "/users/zrtest-nobody", "job-nobody");
  CHECK(nobody.exit_code == 69);
  CHECK_THAT(nobody.out + nobody.err, Catch::Contains("no user 'zrtest-nobody' on node"));
  const RunResult root = cluster.Launch(cluster.ca + "/users/root", "job-root");
  CHECK(root.exit_code == 69);
  CHECK_THAT(root.out + root.err, Catch::Contains("the ranks would run as root: refused"));
}

TEST_CASE(
    "The coordinator serves TLS only, with the job's own CA: its ranks and record carry it, "
    "plaintext and other CAs are refused",
    "[e2e][tls]") {
  TempDir dir;
  const std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  ChildProcess job({ZR_TEST_ZERORUN, "--hostfile", TestData("local2.txt"), "--config", config,
                    "--device", "cpu", "--job-id", "job-ctls", ZR_TEST_RANK, "--report", "--run-ms",
                    "4000", "--env-dir", dir.path()},
                   {{"ZR_HOME", dir.path() + "/home"}});
  const std::string path = dir.path() + "/home/jobs/job-ctls/job.json";
  for (int i = 0; i < 200 && !std::filesystem::exists(dir.path() + "/rank_1.env"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  std::ifstream in(path);
  const nlohmann::json record = nlohmann::json::parse(in, nullptr, false);
  REQUIRE(record.is_object());
  const std::string ca = record.value("coordinator_ca", "");
  const std::string address = record.value("coordinator", "");
  REQUIRE(ca.rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
  // Every rank has that CA; the key never leaves the launcher's memory.
  std::ifstream env_file(dir.path() + "/rank_1.env");
  const std::string env((std::istreambuf_iterator<char>(env_file)), {});
  CHECK_THAT(env, Catch::Contains("ZERORUN_COORDINATOR_CA=" + ca.substr(0, 80)));
  CHECK_THAT(env, !Catch::Contains("PRIVATE KEY"));
  CHECK_THAT(record.dump(), !Catch::Contains("PRIVATE KEY"));
  auto status = [&](const std::shared_ptr<grpc::Channel>& channel) {
    grpc::ClientContext context;
    AttachSecret(&context, record.value("secret", ""));
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    v1::JobStatusReply reply;
    return v1::Coordinator::NewStub(channel)->JobStatus(&context, {}, &reply);
  };
  const grpc::Status with_ca = status(CoordinatorChannel(address, ca));
  INFO(with_ca.error_message());
  CHECK(with_ca.ok());
  CHECK_FALSE(status(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())).ok());
  absl::StatusOr<launcher::EphemeralTls> other = launcher::NewEphemeralTls(kCoordinatorTlsName);
  REQUIRE(other.ok());
  CHECK_FALSE(status(CoordinatorChannel(address, other->ca_pem)).ok());
  // zerorun status reads the CA from the record.
  const RunResult shown =
      Run({ZR_TEST_ZERORUN, "status", "job-ctls"}, {{"ZR_HOME", dir.path() + "/home"}});
  CHECK(shown.exit_code == 0);
  CHECK_THAT(shown.out, Catch::Contains("job job-ctls  running"));
  CHECK(job.Wait(30) == 0);
}

}  // namespace
}  // namespace zerorun::testing
