// Test helper: a real zerorund serving its UNIX socket (and loopback TCP) in a directory of the
// test's, launches over the socket as local users the test made, and calls as those users with
// credentials the kernel vouches for (a child that became the user fetches them).
#ifndef ZERORUN_TESTS_SUPPORT_SOCKET_AGENT_H_
#define ZERORUN_TESTS_SUPPORT_SOCKET_AGENT_H_

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "security/local_cred.h"
#include "support/child_process.h"
#include "support/local_user.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "zerorun/v1/node_agent.grpc.pb.h"

namespace zerorun::testing {

// A zerorund serving its default UNIX socket in STATE/zerorund.sock (and 127.0.0.2 on TCP), run
// as `user` (null: the test's own), and a hostfile naming only that socket.
struct SocketAgent {
  // `extra`: more zerorund flags; `env`: more of its environment.
  explicit SocketAgent(const LocalUser* user = nullptr, std::vector<std::string> extra = {},
                       std::map<std::string, std::string> env = {})
      : user(user), env(std::move(env)) {
    chmod(dir.path().c_str(), 0711);  // Ranks running as users reach their job directories.
    std::filesystem::create_directory(state);
    if (user != nullptr) (void)!chown(state.c_str(), user->uid, user->gid);
    Start(std::move(extra));
    hosts = dir.Write("hosts", "unix:" + socket + " slots=1\n");
    config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  }
  void Start(std::vector<std::string> extra = {}) {
    // A copy users can run: its supervisor runs as the rank's user, and so may zerorund itself.
    std::vector<std::string> argv = {UsersCanRun(ZR_TEST_ZERORUND),
                                     "--listen",
                                     "127.0.0.2:0",
                                     "--state-dir",
                                     state,
                                     "--anonymous-tcp"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent = std::make_unique<ChildProcess>(user != nullptr ? user->As(argv) : argv, env);
    REQUIRE(agent->WaitForOutput("(port ", 10));
  }
  // zerorun, as `as` (null: the test's own user), over the socket, in a home directory of the
  // user's own (its working directory too: the build tree may be closed to other users).
  RunResult Launch(const LocalUser* as, const std::string& job_id, int run_ms = 100,
                   const std::vector<std::string>& rank_args = {},
                   const std::vector<std::string>& zerorun_args = {}) {
    const std::string home = Home(as, job_id);
    std::vector<std::string> argv = {UsersCanRun(ZR_TEST_ZERORUN),
                                     "--hostfile",
                                     hosts,
                                     "--config",
                                     config,
                                     "--device",
                                     "cpu",
                                     "--job-id",
                                     job_id};
    argv.insert(argv.end(), zerorun_args.begin(), zerorun_args.end());
    argv.insert(argv.end(), {UsersCanRun(ZR_TEST_RANK), "--run-ms", std::to_string(run_ms)});
    argv.insert(argv.end(), rank_args.begin(), rank_args.end());
    return Run(as != nullptr ? as->As(argv) : argv, {{"ZR_HOME", home}}, home);
  }
  // A directory of `as`'s own under the test's directory (made when missing).
  std::string Home(const LocalUser* as, const std::string& name) {
    const std::string home = dir.path() + "/home-" + name;
    std::filesystem::create_directories(home);
    if (as != nullptr) (void)!chown(home.c_str(), as->uid, as->gid);
    return home;
  }
  // A stub on the UNIX socket (its calls carry a credential only when the caller adds one).
  std::unique_ptr<v1::NodeAgent::Stub> Stub() const {
    return v1::NodeAgent::NewStub(
        grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  }

  const LocalUser* user;
  const std::map<std::string, std::string> env;
  TempDir dir;
  const std::string state = dir.path() + "/state";
  const std::string socket = state + "/zerorund.sock";
  std::unique_ptr<ChildProcess> agent;
  std::string hosts, config;
};

// A credential fetched from `path` by a child process that runs as `user` (so the kernel, not
// the test, says who asks).
inline std::string CredentialAs(const LocalUser& user, const std::string& path) {
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    if (setgroups(0, nullptr) != 0 || setresgid(user.gid, user.gid, user.gid) != 0 ||
        setresuid(user.uid, user.uid, user.uid) != 0) {
      _exit(1);
    }
    const absl::StatusOr<std::string> credential = FetchLocalCredential(path);
    if (!credential.ok()) _exit(2);
    (void)!write(pipe_fds[1], credential->data(), credential->size());
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string out;
  char buffer[256];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return out;
}

// Status over the socket with `credential`: the ranks listed, or the refusal.
inline grpc::Status StatusWith(const SocketAgent& agent, const std::string& credential,
                               const std::string& job, v1::AgentStatusReply* reply) {
  grpc::ClientContext context;
  if (!credential.empty()) context.AddMetadata(kLocalCredMetadata, credential);
  v1::AgentStatusRequest request;
  request.set_job_id(job);
  return agent.Stub()->Status(&context, request, reply);
}

// The logs of `job` over the socket with `credential`, appended to *data; the call's status.
inline grpc::Status LogsWith(const SocketAgent& agent, const std::string& credential,
                             const std::string& job, std::string* data) {
  grpc::ClientContext context;
  if (!credential.empty()) context.AddMetadata(kLocalCredMetadata, credential);
  v1::LogsRequest request;
  request.set_job_id(job);
  auto reader = agent.Stub()->Logs(&context, request);
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) *data += chunk.data();
  return reader->Finish();
}

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_SOCKET_AGENT_H_
