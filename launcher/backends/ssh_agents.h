// --launcher ssh (and DeepSpeed's --launcher pdsh): one ephemeral zerorund per host, started
// over ssh, bound to that ssh session. The job's secret travels on the session's stdin, never on
// a command line or in an environment; the session's end (zerorun gone) stops the agent and
// kills its ranks.
#ifndef ZERORUN_LAUNCHER_BACKENDS_SSH_AGENTS_H_
#define ZERORUN_LAUNCHER_BACKENDS_SSH_AGENTS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace zerorun::launcher {

class SshAgents {
 public:
  struct Options {
    std::string zerorund;               // The daemon binary (the same path on every host).
    std::string secret;                 // Sent as the first line of each session's stdin.
    std::vector<std::string> ssh_args;  // Before the destination (-p, -F, -i, -o ...).
    std::string log_dir;                // <log_dir>/<tag>.<i>.log: each session's output.
    std::string tag;                    // Unique per launch: names logs and state dirs.
    absl::Duration start_timeout = absl::Minutes(1);
  };
  // ssh to every destination ("host" or "user@host", as ssh takes it) at once and waits for
  // each agent's port. Unavailable naming the hosts that did not come up, each with ssh's last
  // words and its log; the sessions that did start are ended first.
  static absl::StatusOr<std::unique_ptr<SshAgents>> Start(
      const std::vector<std::string>& destinations, const Options& options);
  // Closes every session's stdin (each zerorund stops and kills its ranks) and waits up to 15 s
  // for the sessions to end, then SIGTERM, then SIGKILL.
  ~SshAgents();
  const std::vector<int>& ports() const { return ports_; }

  // The ssh command line for `destination` (for tests and --dry-run style messages).
  static std::vector<std::string> Command(const std::string& destination, const Options& options,
                                          int index);

 private:
  SshAgents() = default;
  struct Session {
    pid_t pid = -1;
    int stdin_fd = -1;
    std::string log_path;
  };
  std::vector<Session> sessions_;
  std::vector<int> ports_;
};

// ssh's options from DeepSpeed's conventions: PDSH_SSH_ARGS_APPEND's words (`pdsh_args`, split
// on whitespace as DeepSpeed passes them to pdsh), then -p `ssh_port` when > 0.
std::vector<std::string> SshArgs(const std::string& pdsh_args, int ssh_port);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_BACKENDS_SSH_AGENTS_H_
