// The per-rank supervisor: a small process (zerorund or the launcher re-executed with
// kSupervisorFlag) that is each rank's parent. It reaps the rank and records how it ended (so a
// restarted zerorund learns exit codes it could not wait for), ends the rank when the launcher's
// lease lapses, and leaves nothing of the rank behind (it is a subreaper; cgroup when given).
#ifndef ZERORUN_WORKER_RANK_SUPERVISOR_H_
#define ZERORUN_WORKER_RANK_SUPERVISOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "user_files.h"

namespace zerorun::worker {

inline constexpr char kSupervisorFlag[] = "--zerorun-rank-supervisor";

// Calls the supervisor when argv[1] is kSupervisorFlag and returns its exit code; returns -1
// otherwise. Every binary that runs a JobRunner calls it first thing in main().
int MaybeRunRankSupervisor(int argc, char** argv);

struct SupervisorArgs {
  std::string rank_dir;    // Where "exit" is written.
  std::string lease_file;  // Its mtime is the launcher's last word; content "lease_ms window_ms".
  int64_t grace_ms = 10000;
  bool adoptable = true;        // false: the parent (launcher) dying ends the rank at once.
  std::string daemon_pid_file;  // zerorund's pid file: alive means "no launcher", else window.
  std::string cgroup;           // The rank's cgroup, or empty.
  int ready_fd = -1;            // The rank's pid is written here, then closed.
  std::vector<std::string> argv;
};

// The argv that starts a supervisor for `args` through `self_exe`.
std::vector<std::string> SupervisorCommand(const std::string& self_exe, const SupervisorArgs& args);

// How a rank ended, as its supervisor recorded it in <rank_dir>/exit.
struct RankExit {
  int exit_code = 0;  // -1 when killed by a signal.
  int signal = 0;
  std::string reason;  // Why the supervisor ended it (e.g. the lease lapsed); empty otherwise.
  int64_t time_unix_ms = 0;  // When the supervisor saw it exit; 0 when not recorded.
};
// Read as a file of `owner` (the account the supervisor ran as): a link or someone else's file
// planted there reads as no exit yet.
std::optional<RankExit> ReadRankExit(const std::string& rank_dir, const FileOwner& owner);

// The lease file's terms.
absl::Status WriteLeaseFile(const std::string& path, int64_t lease_ms, int64_t window_ms);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_RANK_SUPERVISOR_H_
