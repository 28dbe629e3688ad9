// Per-job cgroups, so that every process of a job is found and ended (double-forked daemons
// included): cgroup v2 with cgroup.kill where mounted, else the v1 freezer hierarchy.
#ifndef ZERORUN_WORKER_CGROUP_H_
#define ZERORUN_WORKER_CGROUP_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace zerorun::worker {

// The directory under which zerorun makes job cgroups: "<v2 mount>/zerorun" or
// "<v1 freezer mount>/zerorun"; empty when neither is mounted or it cannot be created (not root).
// `override_root`, when not empty, is used instead (tests).
std::string CgroupRoot(const std::string& override_root = "");

// The cgroup under CgroupRoot() for the agent whose state is in `state_dir`: several agents
// on one host (tests, a launcher's embedded agent next to zerorund) never share job cgroups.
// Stable across restarts of that agent. Empty when cgroups cannot be used.
std::string AgentCgroupRoot(const std::string& state_dir);

// Creates <root>/<name> (mode 0755). Internal naming the path on failure.
absl::StatusOr<std::string> MakeCgroup(const std::string& root, const std::string& name);

// Moves process `pid` into cgroup `dir`.
absl::Status JoinCgroup(const std::string& dir, int pid);

// Ends every process in `dir` and its descendants (cgroup.kill on v2; freeze, SIGKILL, thaw on
// v1), waits up to 5 s for it to empty, and removes the directories. The caller must not be in
// it. `reap` runs between checks (a parent reaps its zombies there, or the directory stays busy).
// Returns the number of processes that were found there.
absl::StatusOr<int> KillAndRemoveCgroup(const std::string& dir, const std::function<void()>& reap);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_CGROUP_H_
