// Ephemeral zerorunds over ssh (see ssh_agents.h).
#include "backends/ssh_agents.h"

#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "backends/agent_spawn.h"
#include "base/env.h"
#include "proc_util.h"

namespace zerorun::launcher {

std::vector<std::string> SshArgs(const std::string& pdsh_args, int ssh_port) {
  std::vector<std::string> args =
      absl::StrSplit(pdsh_args, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  if (ssh_port > 0) {
    args.push_back("-p");
    args.push_back(std::to_string(ssh_port));
  }
  return args;
}

std::vector<std::string> SshAgents::Command(const std::string& destination, const Options& options,
                                            int index) {
  // The agent: any port, the job's secret from stdin, gone with the session and its ranks with
  // it; its ranks run as the ssh user, root included (that user logged in to run them).
  const std::string script = absl::StrCat(
      "exec ", ShellQuote(options.zerorund),
      " --listen 0.0.0.0:0 --auth secret --secret-file - --exit-on-stdin-close "
      "--kill-jobs-on-exit --no-cgroups --allow-root-ranks --unix-socket none --state-dir "
      "\"${TMPDIR:-/tmp}/zerorun-ssh-",
      options.tag, ".", index, "\"");
  // The user's options first: ssh keeps the first value it is given for each.
  std::vector<std::string> argv = {"ssh"};
  argv.insert(argv.end(), options.ssh_args.begin(), options.ssh_args.end());
  for (const char* option :
       {"BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=5", "ServerAliveCountMax=3"}) {
    argv.push_back("-o");
    argv.push_back(option);
  }
  // -T: no terminal (the session's end, not a hangup, stops the agent). The remote login shell
  // gets one string; /bin/sh runs it whatever that shell is.
  argv.insert(argv.end(), {"-T", destination, "/bin/sh -c " + ShellQuote(script)});
  return argv;
}

absl::StatusOr<std::unique_ptr<SshAgents>> SshAgents::Start(
    const std::vector<std::string>& destinations, const Options& options) {
  std::unique_ptr<SshAgents> agents(new SshAgents());
  agents->ports_.assign(destinations.size(), 0);
  for (size_t i = 0; i < destinations.size(); ++i) {
    Session session;
    session.log_path = absl::StrCat(options.log_dir, "/", options.tag, ".", i, ".log");
    absl::StatusOr<SpawnedAgent> spawned = SpawnAgentProcess(
        Command(destinations[i], options, static_cast<int>(i)),
        EnvironmentWith(kEnvSecret.name, ""), session.log_path, /*stdin_pipe=*/true,
        "zerorun: cannot run ssh (is OpenSSH's client installed?)");
    if (!spawned.ok()) return spawned.status();
    session.pid = spawned->pid;
    session.stdin_fd = spawned->stdin_fd;
    agents->sessions_.push_back(session);
    // The secret is the first line ssh forwards; a session that died already fails below.
    const std::string line = options.secret + "\n";
    (void)!send(session.stdin_fd, line.data(), line.size(), MSG_NOSIGNAL);
  }
  const absl::Time deadline = absl::Now() + options.start_timeout;
  while (true) {
    std::vector<std::string> failed;
    bool waiting = false;
    for (size_t i = 0; i < destinations.size(); ++i) {
      if (agents->ports_[i] != 0) continue;
      Session& session = agents->sessions_[i];
      const std::string text = worker::ReadSmallFile(session.log_path).value_or("");
      for (absl::string_view line : absl::StrSplit(text, '\n')) {
        if (std::optional<int> port = ServingPort(line); port.has_value()) {
          agents->ports_[i] = *port;
        }
      }
      if (agents->ports_[i] != 0) continue;
      const bool exited = session.pid > 0 && ProcessExited(session.pid);
      if (exited) session.pid = -1;
      if (exited || session.pid <= 0 || absl::Now() > deadline) {
        failed.push_back(absl::StrCat(
            destinations[i], exited || session.pid <= 0 ? " (ssh exited)" : " (still silent)",
            ":\n", LastLines(text, 6), "\n    (all of it in ", session.log_path, ")"));
      } else {
        waiting = true;
      }
    }
    if (!failed.empty() && (!waiting || absl::Now() > deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "zerorund did not come up over ssh on ", failed.size(), " host(s) within ",
          absl::FormatDuration(options.start_timeout), ":\n  ", absl::StrJoin(failed, "\n  "),
          "\n  Fix: check that `ssh HOST` works without a password (BatchMode) and that ",
          options.zerorund, " exists on every host"));
    }
    if (failed.empty() && !waiting) return agents;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

SshAgents::~SshAgents() {
  for (Session& session : sessions_) {
    if (session.stdin_fd >= 0) close(session.stdin_fd);  // The agent's cue to stop.
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  for (Session& session : sessions_) {
    bool exited = session.pid <= 0;
    while (!exited && !(exited = ProcessExited(session.pid)) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    if (!exited) EndProcess(session.pid, absl::Seconds(5));
  }
}

}  // namespace zerorun::launcher
