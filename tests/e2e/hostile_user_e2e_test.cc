// e2e: a hostile local user against a root zerorund (issue 25). The user plants links where
// zerorund will write or read a rank log, relaunches a job id zerorund forgot, reads the
// environment root's zerorund gave its ranks, and calls TCP with no credential. Real zerorund,
// zerorun and rank processes; the users are made by the test (root only), and everything the
// hostile user does, it does as that user (setpriv).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "support/local_user.h"
#include "support/socket_agent.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

uid_t OwnerOf(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

// `command` through /bin/sh as `user` (what the hostile user does with their own files).
void AsUser(const LocalUser& user, const std::string& command) {
  const RunResult r = Run(user.As({"/bin/sh", "-c", command}), {}, "/");
  INFO(command << ": " << r.err);
  REQUIRE(r.exit_code == 0);
}

// A root-owned file that no user may read, and one they may read but not write.
struct Victims {
  explicit Victims(TempDir& dir)
      : secret(dir.Write("secret", "TOPSECRET\n")), precious(dir.Write("precious", "precious\n")) {
    chmod(secret.c_str(), 0600);
    chmod(precious.c_str(), 0644);
  }
  void CheckUntouched() const {
    CHECK(ReadText(precious) == "precious\n");
    CHECK(OwnerOf(precious) == 0);
    CHECK(ReadText(secret) == "TOPSECRET\n");
    CHECK(OwnerOf(secret) == 0);
  }
  std::string secret, precious;
};

TEST_CASE(
    "A root zerorund never writes a rank log through a link the user planted: not in the user's "
    "--log-dir, not in the rank directory of a job id it forgot, and another user cannot relaunch "
    "that id",
    "[e2e][auth][local][hostile]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (a root zerorund and users the test makes)");
    return;
  }
  LocalUser alice(Alice()), bob(Bob());
  SocketAgent agent(nullptr, {"--retention", "0"});
  const Victims victims(agent.dir);

  // --log-dir: the user's own directory, with links where the logs will go.
  const std::string logs = agent.Home(&alice, "logs");
  AsUser(alice, "mkdir -p " + logs + "/rank_0 && ln -s " + victims.precious + " " + logs +
                    "/rank_0/stdout.log && ln -s " + victims.secret + " " + logs +
                    "/rank_0/stderr.log");
  const RunResult run =
      agent.Launch(&alice, "job-links", 100, {"--lines", "3"}, {"--log-dir", logs});
  INFO(run.out + run.err);
  CHECK(run.exit_code == 0);
  victims.CheckUntouched();
  const std::string log = logs + "/rank_0/stdout.log";
  CHECK_FALSE(std::filesystem::is_symlink(log));
  CHECK(OwnerOf(log) == alice.uid);
  CHECK_THAT(ReadText(log), Catch::Contains("line 2 of rank 0"));

  // A job id zerorund forgot (retention 0): its rank directory is alice's; she plants a link in
  // it and launches the id again.
  REQUIRE(agent.Launch(&alice, "job-again", 100).exit_code == 0);
  const std::string rank_dir = agent.state + "/job-again/rank_0";
  REQUIRE(OwnerOf(rank_dir) == alice.uid);
  AsUser(alice, "rm -f " + rank_dir + "/stdout.log && ln -s " + victims.precious + " " + rank_dir +
                    "/stdout.log");
  const RunResult again = agent.Launch(&alice, "job-again", 100, {"--lines", "2"});
  INFO(again.out + again.err);
  CHECK(again.exit_code == 0);
  victims.CheckUntouched();
  CHECK(OwnerOf(rank_dir + "/stdout.log") == alice.uid);

  // Bob may not take over alice's forgotten id (its rank directories are hers).
  const RunResult taken = agent.Launch(&bob, "job-again", 100);
  CHECK(taken.exit_code != 0);
  CHECK_THAT(taken.out + taken.err,
             Catch::Contains("job id job-again was used on") && Catch::Contains(alice.name));
  CHECK(OwnerOf(rank_dir) == alice.uid);
}

TEST_CASE(
    "zerorun logs never reads a file through a link: a user who swaps their rank log for a link "
    "to a root-only file is refused, naming it, and reads nothing of it",
    "[e2e][auth][local][hostile]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (a root zerorund and users the test makes)");
    return;
  }
  LocalUser alice(Alice());
  SocketAgent agent;
  const Victims victims(agent.dir);
  REQUIRE(agent.Launch(&alice, "job-read", 100, {"--lines", "2"}).exit_code == 0);
  const std::string log = agent.state + "/job-read/rank_0/stdout.log";
  AsUser(alice, "rm -f " + log + " && ln -s " + victims.secret + " " + log);
  std::string seen;
  const grpc::Status read =
      LogsWith(agent, CredentialAs(alice, CredentialSocketPath(agent.socket)), "job-read", &seen);
  CHECK(read.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(read.error_message(), Catch::Contains(log) && Catch::Contains("symbolic link"));
  CHECK(seen.find("TOPSECRET") == std::string::npos);
  // The same through the CLI: nothing of the file, and the refusal named.
  const std::string home = agent.Home(&alice, "job-read");
  const RunResult cli =
      Run(alice.As({UsersCanRun(ZR_TEST_ZERORUN), "logs", "job-read"}), {{"ZR_HOME", home}}, home);
  CHECK(cli.exit_code != 0);
  CHECK(cli.out.find("TOPSECRET") == std::string::npos);
  CHECK(cli.err.find("TOPSECRET") == std::string::npos);
  victims.CheckUntouched();
}

TEST_CASE(
    "A root zerorund starts users' ranks from a clean environment: nothing of its own reaches "
    "them, the user's HOME, USER, LOGNAME, SHELL and a plain PATH do",
    "[e2e][auth][local][hostile]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (a root zerorund and users the test makes)");
    return;
  }
  LocalUser alice(Alice());
  SocketAgent agent(nullptr, {}, {{"ZR_DAEMON_ONLY", "root-private"}});
  const std::string envs = agent.Home(&alice, "envs");
  REQUIRE(agent.Launch(&alice, "job-env", 100, {"--env-dir", envs}).exit_code == 0);
  std::map<std::string, std::string> env;
  std::ifstream in(envs + "/rank_0.env");
  for (std::string line; std::getline(in, line);) {
    if (const size_t eq = line.find('='); eq != std::string::npos) {
      env[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  REQUIRE_FALSE(env.empty());
  CHECK(env.count("ZR_DAEMON_ONLY") == 0);
  CHECK(env["USER"] == alice.name);
  CHECK(env["LOGNAME"] == alice.name);
  CHECK(env.count("HOME") == 1);
  CHECK(env["SHELL"] == "/usr/sbin/nologin");
  CHECK_THAT(env["PATH"], Catch::EndsWith("/usr/local/bin:/usr/bin:/bin"));
  CHECK(env.count("RANK") == 1);  // The rank contract still arrives.
}

TEST_CASE(
    "A root zerorund serves no anonymous TCP unless asked: an explicit --listen without "
    "credentials is refused (77), the default serves the UNIX socket alone",
    "[e2e][auth][local][hostile]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (the rule is root's)");
    return;
  }
  TempDir dir;
  const RunResult refused =
      Run({ZR_TEST_ZERORUND, "--listen", "127.0.0.2:0", "--state-dir", dir.path() + "/a"},
          {{"ZR_SECRET", ""}}, "", 10);
  CHECK(refused.exit_code == 77);
  CHECK_THAT(refused.err, Catch::Contains("refusing to serve 127.0.0.2:0 to anonymous callers") &&
                              Catch::Contains("--anonymous-tcp"));
  ChildProcess quiet({ZR_TEST_ZERORUND, "--state-dir", dir.path() + "/b"}, {{"ZR_SECRET", ""}});
  REQUIRE(quiet.WaitForOutput("serving NodeAgent", 10));
  CHECK_THAT(quiet.Output(), Catch::Contains("no TCP port") &&
                                 Catch::Contains("local users on unix:" + dir.path() + "/b"));
  const RunResult none =
      Run({ZR_TEST_ZERORUND, "--state-dir", dir.path() + "/c", "--unix-socket", "none"},
          {{"ZR_SECRET", ""}}, "", 10);
  CHECK(none.exit_code == 2);
}

}  // namespace
}  // namespace zerorun::testing
