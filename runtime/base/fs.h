// Small filesystem helpers shared by the launcher and the node agent.
#ifndef ZERORUN_RUNTIME_BASE_FS_H_
#define ZERORUN_RUNTIME_BASE_FS_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace zerorun {

// mkdir -p for zerorun's own state directories (never for a path a user named). Internal with
// the failing directory and errno text on error.
absl::Status MakeDirs(const std::string& path, mode_t mode);

// `name` as execvp would find it: a name with a '/' as it is, else the first $PATH directory
// holding it (an empty entry is "."). Returns the first candidate that exists and is not a
// directory, executable or not (callers say "not executable"), or "" when there is none.
std::string FindProgram(const std::string& name);

// Internal "<what> <path>: <strerror(errno)>" for the errno a failed call just set.
absl::Status ErrnoError(const std::string& what, const std::string& path);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_FS_H_
