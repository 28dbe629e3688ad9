// The child processes that bring ephemeral node agents up (srun for Slurm, ssh per host): each
// in its own process group, ended with this process, its output in a log file where the agents'
// "serving NodeAgent ... (port N)" lines are read back.
#ifndef ZERORUN_LAUNCHER_BACKENDS_AGENT_SPAWN_H_
#define ZERORUN_LAUNCHER_BACKENDS_AGENT_SPAWN_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace zerorun::launcher {

struct SpawnedAgent {
  pid_t pid = -1;
  int stdin_fd = -1;  // This side of the child's stdin (a socket pair) when asked for, else -1.
};

// Starts `argv` (argv[0] looked up in $PATH) with `env` (whole), stdout and stderr to
// `log_path` (created 0600, truncated), stdin /dev/null or, with `stdin_pipe`, a socket whose
// other end this side holds. The child gets its own process group (a Ctrl-C for zerorun is not
// its) and SIGTERM when this process dies. `missing` is what the child writes to the log when
// argv[0] cannot run. Internal naming the log when it cannot be written.
absl::StatusOr<SpawnedAgent> SpawnAgentProcess(const std::vector<std::string>& argv,
                                               const std::vector<std::string>& env,
                                               const std::string& log_path, bool stdin_pipe,
                                               const std::string& missing);

// This process's environment without `drop` (a NAME), plus `add` ("NAME=VALUE") when not empty.
std::vector<std::string> EnvironmentWith(absl::string_view drop, const std::string& add);

// The port of a zerorund's "serving NodeAgent on ... (port N)" line, if `line` is one.
std::optional<int> ServingPort(absl::string_view line);

// The last `n` non-empty lines of `text`, each indented, for an error message.
std::string LastLines(absl::string_view text, size_t n);

// `text` as one word for a POSIX shell ('...' with ' escaped).
std::string ShellQuote(absl::string_view text);

// Sends SIGTERM to `pid` and reaps it, SIGKILL after `grace`. Nothing for pid <= 0.
void EndProcess(pid_t pid, absl::Duration grace);

// True (and reaped) when `pid` has exited.
bool ProcessExited(pid_t pid);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_BACKENDS_AGENT_SPAWN_H_
