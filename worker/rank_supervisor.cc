// The supervisor process: fork the rank, forward stop signals, check the lease, reap, record.
// It runs after exec, single-threaded, so ordinary library calls are safe here.
#include "rank_supervisor.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cgroup.h"
#include "proc_util.h"

namespace zerorun::worker {
namespace {

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// The supervisor's own lines go to the rank's stderr log, where the user looks.
void Note(const std::string& text) {
  const std::string line = absl::StrCat("zerorun supervisor (pid ", getpid(), "): ", text, "\n");
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

bool DaemonAlive(const std::string& pid_file) {
  if (pid_file.empty()) return false;
  const std::optional<std::string> text = ReadSmallFile(pid_file);
  int pid = 0;
  if (!text.has_value() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid)) {
    return false;
  }
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

// Reaps every exited child except the rank (orphans re-parented to us, the subreaper).
void ReapOrphans(pid_t rank) {
  for (pid_t child : ChildrenOf(getpid())) {
    if (child != rank) (void)waitpid(child, nullptr, WNOHANG);
  }
}

// SIGKILLs every remaining descendant (the rank's group first) until only `rank` is left.
void EndDescendants(pid_t rank, const std::string& cgroup) {
  kill(-rank, SIGKILL);
  if (!cgroup.empty()) {
    if (absl::StatusOr<int> killed = KillAndRemoveCgroup(cgroup, [rank] { ReapOrphans(rank); });
        !killed.ok()) {
      Note(std::string(killed.status().message()));
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    bool others = false;
    for (pid_t child : ChildrenOf(getpid())) {
      if (child == rank) continue;
      others = true;
      kill(child, SIGKILL);
      (void)waitpid(child, nullptr, WNOHANG);
    }
    if (!others) return;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

int Supervise(const SupervisorArgs& a) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const pid_t parent = getppid();
  sigset_t watched;
  sigemptyset(&watched);
  for (int sig : kForwarded) sigaddset(&watched, sig);
  sigaddset(&watched, SIGCHLD);
  sigprocmask(SIG_BLOCK, &watched, nullptr);

  std::vector<char*> argv;
  for (const std::string& s : a.argv) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  const std::string exec_error = absl::StrCat("zerorund: cannot execute ", a.argv[0], ": ");
  const pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // A rank never outlives its supervisor.
    if (!a.cgroup.empty()) (void)JoinCgroup(a.cgroup, getpid());
    execvp(argv[0], argv.data());
    const std::string line = exec_error + strerror(errno) + "\n";
    (void)!write(STDERR_FILENO, line.data(), line.size());
    _exit(127);
  }
  if (pid < 0) {
    Note(absl::StrCat("fork: ", strerror(errno)));
    return 71;
  }
  setpgid(pid, pid);
  if (a.ready_fd >= 0) {
    const std::string text = absl::StrCat(pid, "\n");
    (void)!write(a.ready_fd, text.data(), text.size());
    close(a.ready_fd);
  }

  std::string reason;
  int64_t exited_ms = 0;  // When the rank was seen to exit (the job's root cause is the earliest).
  absl::Time kill_at = absl::InfiniteFuture();
  absl::Time next_lease_check = absl::Now();
  const timespec tick{0, 100 * 1000 * 1000};
  while (true) {
    const int sig = sigtimedwait(&watched, nullptr, &tick);
    siginfo_t info{};
    const bool exited =
        waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    if (exited) {
      exited_ms = absl::ToUnixMillis(absl::Now());
      break;
    }
    if (sig > 0 && sig != SIGCHLD) kill(-pid, sig);
    ReapOrphans(pid);
    const absl::Time now = absl::Now();
    if (now >= kill_at) {
      Note(absl::StrCat("rank still running ", a.grace_ms, " ms after SIGTERM: SIGKILL"));
      kill(-pid, SIGKILL);
      kill_at = absl::InfiniteFuture();
    }
    if (!reason.empty() || now < next_lease_check) continue;
    next_lease_check = now + absl::Milliseconds(250);
    int64_t lease_ms = 10000, window_ms = 30000;
    if (std::optional<std::string> terms = ReadSmallFile(a.lease_file)) {
      std::istringstream(*terms) >> lease_ms >> window_ms;
    }
    const std::optional<int64_t> age = FileAgeMs(a.lease_file);
    if (!a.adoptable && getppid() != parent) {
      reason = absl::StrCat("the launcher (pid ", parent, ") that ran this rank exited");
    } else if (!age.has_value()) {
      reason = absl::StrCat("the job's lease file ", a.lease_file, " is gone");
    } else {
      const bool daemon = getppid() == parent || DaemonAlive(a.daemon_pid_file);
      const int64_t limit = daemon ? lease_ms : std::max(lease_ms, window_ms);
      if (*age > limit) {
        reason = absl::StrFormat(
            daemon ? "the launcher's lease lapsed (no word from it for %.1f s)"
                   : "zerorund did not come back within %.1f s to renew the launcher's lease",
            static_cast<double>(*age) / 1000.0);
      }
    }
    if (!reason.empty()) {
      Note(absl::StrCat(reason, ": ending the rank (SIGTERM, SIGKILL after ", a.grace_ms, " ms)"));
      kill(-pid, SIGTERM);
      kill_at = now + absl::Milliseconds(a.grace_ms);
    }
  }
  // The rank is a zombie: its group id is still ours while we end what it left behind.
  EndDescendants(pid, a.cgroup);
  int status = 0;
  waitpid(pid, &status, 0);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const int signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  if (absl::Status s = WriteFileAtomic(
          a.rank_dir + "/exit", absl::StrCat(code, " ", signal, " ", exited_ms, "\n", reason, "\n"),
          0644);
      !s.ok()) {
    Note(std::string(s.message()));
  }
  return 0;
}

}  // namespace

std::vector<std::string> SupervisorCommand(const std::string& self_exe, const SupervisorArgs& a) {
  std::vector<std::string> argv = {self_exe,
                                   kSupervisorFlag,
                                   a.rank_dir,
                                   a.lease_file,
                                   std::to_string(a.grace_ms),
                                   a.adoptable ? "adoptable" : "parent",
                                   a.daemon_pid_file.empty() ? "-" : a.daemon_pid_file,
                                   a.cgroup.empty() ? "-" : a.cgroup,
                                   std::to_string(a.ready_fd),
                                   "--"};
  argv.insert(argv.end(), a.argv.begin(), a.argv.end());
  return argv;
}

int MaybeRunRankSupervisor(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], kSupervisorFlag) != 0) return -1;
  if (argc < 11 || std::strcmp(argv[9], "--") != 0) {
    Note(
        "usage: <exe> --zerorun-rank-supervisor DIR LEASE GRACE_MS MODE PIDFILE CGROUP FD -- ARGV");
    return 2;
  }
  SupervisorArgs a;
  a.rank_dir = argv[2];
  a.lease_file = argv[3];
  (void)absl::SimpleAtoi(argv[4], &a.grace_ms);
  a.adoptable = std::strcmp(argv[5], "adoptable") == 0;
  a.daemon_pid_file = std::strcmp(argv[6], "-") == 0 ? "" : argv[6];
  a.cgroup = std::strcmp(argv[7], "-") == 0 ? "" : argv[7];
  (void)absl::SimpleAtoi(argv[8], &a.ready_fd);
  for (int i = 10; i < argc; ++i) a.argv.push_back(argv[i]);
  return Supervise(a);
}

std::optional<RankExit> ReadRankExit(const std::string& rank_dir, const FileOwner& owner) {
  const std::optional<std::string> text = ReadOwnedFile(rank_dir + "/exit", owner);
  if (!text.has_value()) return std::nullopt;
  RankExit exit;
  std::istringstream in(*text);
  if (!(in >> exit.exit_code >> exit.signal)) return std::nullopt;
  if (in.peek() == ' ' && !(in >> exit.time_unix_ms)) return std::nullopt;
  in.ignore(1);
  std::getline(in, exit.reason);
  return exit;
}

absl::Status WriteLeaseFile(const std::string& path, int64_t lease_ms, int64_t window_ms) {
  return WriteFileAtomic(path, absl::StrCat(lease_ms, " ", window_ms, "\n"), 0644);
}

}  // namespace zerorun::worker
