// Child processes that start ephemeral node agents (see agent_spawn.h).
#include "backends/agent_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

extern char** environ;

namespace zerorun::launcher {

absl::StatusOr<SpawnedAgent> SpawnAgentProcess(const std::vector<std::string>& argv,
                                               const std::vector<std::string>& env,
                                               const std::string& log_path, bool stdin_pipe,
                                               const std::string& missing) {
  std::vector<char*> c_argv, c_env;
  for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  for (const std::string& e : env) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);
  const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log < 0) return absl::InternalError(absl::StrCat("cannot write ", log_path));
  int pair[2] = {-1, -1};
  if (stdin_pipe && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    close(log);
    return absl::InternalError("socketpair failed");
  }
  const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int child_in = stdin_pipe ? pair[1] : devnull;
  const std::string missing_line = missing + "\n";
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    if (child_in >= 0) dup2(child_in, STDIN_FILENO);
    execvpe(c_argv[0], c_argv.data(), c_env.data());
    (void)!write(STDERR_FILENO, missing_line.data(), missing_line.size());
    _exit(127);
  }
  close(log);
  if (devnull >= 0) close(devnull);
  if (pair[1] >= 0) close(pair[1]);
  if (pid < 0) {
    if (pair[0] >= 0) close(pair[0]);
    return absl::InternalError("fork failed");
  }
  return SpawnedAgent{pid, pair[0]};
}

std::vector<std::string> EnvironmentWith(absl::string_view drop, const std::string& add) {
  const std::string prefix = absl::StrCat(drop, "=");
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, prefix)) env.push_back(*e);
  }
  if (!add.empty()) env.push_back(add);
  return env;
}

std::optional<int> ServingPort(absl::string_view line) {
  static const std::regex kServing(R"(serving NodeAgent on \S+ \(port (\d+)\))");
  std::cmatch match;
  if (!std::regex_search(line.begin(), line.end(), match, kServing)) return std::nullopt;
  return std::stoi(match[1].str());
}

std::string LastLines(absl::string_view text, size_t n) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - n);
  return absl::StrCat("    ", absl::StrJoin(lines, "\n    "));
}

std::string ShellQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

bool ProcessExited(pid_t pid) {
  int status = 0;
  return pid > 0 && waitpid(pid, &status, WNOHANG) == pid;
}

void EndProcess(pid_t pid, absl::Duration grace) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace zerorun::launcher
