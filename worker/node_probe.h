// Read-only facts about this node: host memory, a path's filesystem (exists, writable, O_DIRECT,
// free space) and an executable (found, runnable, sha256). Nothing here creates what it probes.
#ifndef ZERORUN_WORKER_NODE_PROBE_H_
#define ZERORUN_WORKER_NODE_PROBE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace zerorun::worker {

struct HostMemory {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;  // MemAvailable.
};

// From /proc/meminfo. Unavailable when it cannot be read.
absl::StatusOr<HostMemory> ReadHostMemory();

struct PathFacts {
  bool exists = false;
  bool is_directory = false;
  bool writable = false;    // A probe file could be created (and was removed again).
  bool o_direct = false;    // That probe file could be opened with O_DIRECT and written.
  uint64_t free_bytes = 0;  // statvfs f_bavail * f_frsize of the path, or of its nearest
                            // existing ancestor when it does not exist.
  std::string fs_type;      // e.g. "ext4", "tmpfs", from /proc/self/mounts.
  std::string error;        // errno text of the first failure.
};

// Probes `path`. When `probe_write` is set and the path is an existing directory, creates one
// hidden probe file in it, tries an aligned O_DIRECT write, and unlinks it.
PathFacts ProbePath(const std::string& path, bool probe_write);

struct ExecutableFacts {
  std::string resolved_path;  // Empty when not found.
  bool executable = false;
  std::string sha256;             // Hex; empty when unreadable.
  bool links_libzerorun = false;  // It holds base/runtime_marker.h's bytes plus ":<version>".
  std::string error;
};

// Finds `name` (a path, or a bare name searched in $PATH like execvp) and hashes it.
ExecutableFacts ProbeExecutable(const std::string& name);

// Runs `interpreter` (a Python) in `cwd` for at most 10 s to check that it starts and, when
// `module` is not empty, that it finds that module (importlib's find_spec, as -m would). Returns
// "" when it does, else what went wrong in words (exit status, the last line of stderr).
std::string ProbePython(const std::string& interpreter, const std::string& cwd,
                        const std::string& module);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_NODE_PROBE_H_
