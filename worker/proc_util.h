// Small Linux process and file facts shared by zerorund, the per-rank supervisor and cgroups:
// /proc start times (a pid's identity), children by /proc scan, atomic file writes.
#ifndef ZERORUN_WORKER_PROC_UTIL_H_
#define ZERORUN_WORKER_PROC_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace zerorun::worker {

struct ProcFacts {
  char state = '?';  // /proc/<pid>/stat field 3: R, S, D, T, Z, ...
  pid_t ppid = 0;
  pid_t pgid = 0;
  uint64_t start_ticks = 0;  // Field 22: clock ticks after boot; with the pid, an identity.
};

// Facts of `pid`, or nullopt when there is no such process.
std::optional<ProcFacts> ReadProcFacts(pid_t pid);

// True when `pid` exists, is not a zombie, and (when start_ticks != 0) started at start_ticks.
bool ProcessIs(pid_t pid, uint64_t start_ticks);

// Pids whose parent is `parent` (a scan of /proc; the kernel's children file is optional).
std::vector<pid_t> ChildrenOf(pid_t parent);

// Writes `content` to `path` via a temporary file, fsync and rename: readers see the old file or
// the whole new one. Internal naming the path on failure.
absl::Status WriteFileAtomic(const std::string& path, const std::string& content, int mode);

// The whole file, or nullopt when it cannot be read.
std::optional<std::string> ReadSmallFile(const std::string& path);

// This process's executable (/proc/self/exe resolved), or "" when it cannot be read.
std::string SelfExecutable();

// Milliseconds since `path` was last modified (by TouchFile or a write); nullopt when missing.
std::optional<int64_t> FileAgeMs(const std::string& path);
void TouchFile(const std::string& path);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_PROC_UTIL_H_
