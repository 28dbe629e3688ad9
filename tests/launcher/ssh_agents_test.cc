// --launcher ssh's command lines (issue 14): DeepSpeed's ssh options first, the remote command
// one quoted word for any login shell, and the job's secret never among the arguments.
#include "backends/ssh_agents.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_join.h"
#include "backends/agent_spawn.h"

namespace zerorun::launcher {
namespace {

TEST_CASE("ssh options come from PDSH_SSH_ARGS_APPEND's words and --ssh_port", "[ssh]") {
  CHECK(SshArgs("", 0).empty());
  CHECK(SshArgs("  -F /etc/zr.conf\t-o Compression=no ", 2222) ==
        std::vector<std::string>{"-F", "/etc/zr.conf", "-o", "Compression=no", "-p", "2222"});
  CHECK(SshArgs("-i key", 0) == std::vector<std::string>{"-i", "key"});
}

TEST_CASE("the ssh command runs zerorund bound to the session, the secret on stdin only", "[ssh]") {
  SshAgents::Options options;
  options.zerorund = "/opt/zero run/it's/zerorund";
  options.secret = "0123456789abcdef0123456789abcdef";
  options.ssh_args = {"-p", "2222", "-o", "BatchMode=no"};
  options.tag = "77-1700000000000";
  const std::vector<std::string> argv = SshAgents::Command("root@10.0.0.2", options, 3);
  const std::string line = absl::StrJoin(argv, " ");
  INFO(line);
  REQUIRE(argv.size() >= 6);
  CHECK(argv[0] == "ssh");
  // The user's options before ours: ssh keeps the first value of each.
  CHECK(std::vector<std::string>(argv.begin() + 1, argv.begin() + 5) == options.ssh_args);
  CHECK(line.find("BatchMode=no") < line.find("BatchMode=yes"));
  CHECK(argv[argv.size() - 2] == "root@10.0.0.2");
  CHECK(argv[argv.size() - 3] == "-T");
  const std::string& remote = argv.back();
  CHECK(remote.rfind("/bin/sh -c '", 0) == 0);
  CHECK_THAT(remote, Catch::Contains("--secret-file - --exit-on-stdin-close --kill-jobs-on-exit"));
  CHECK_THAT(remote, Catch::Contains("zerorun-ssh-77-1700000000000.3"));
  CHECK(line.find(options.secret) == std::string::npos);
}

TEST_CASE("ShellQuote makes one word of anything", "[ssh]") {
  CHECK(ShellQuote("plain") == "'plain'");
  CHECK(ShellQuote("it's") == "'it'\\''s'");
  CHECK(ShellQuote("") == "''");
  CHECK(ShellQuote("$HOME `x` \"y\"") == "'$HOME `x` \"y\"'");
}

TEST_CASE("ServingPort reads zerorund's serving line and nothing else", "[ssh]") {
  CHECK(ServingPort("[zerorund h:1] zerorun 0.9 serving NodeAgent on 0.0.0.0:0 (port 40123), "
                    "shared secret") == 40123);
  CHECK(ServingPort("  1: [zerorund n2:7] zerorun serving NodeAgent on 0.0.0.0:0 (port 9)") == 9);
  CHECK_FALSE(ServingPort("serving NodeAgent soon").has_value());
  CHECK_FALSE(ServingPort("ssh: connect to host h port 22: Connection refused").has_value());
}

}  // namespace
}  // namespace zerorun::launcher
