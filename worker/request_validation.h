// What zerorund accepts from the wire, checked before anything is created or started: job ids,
// rank specs (argv, "KEY=VALUE" env, no NUL bytes), signal numbers. Pure functions, fuzzed.
#ifndef ZERORUN_WORKER_REQUEST_VALIDATION_H_
#define ZERORUN_WORKER_REQUEST_VALIDATION_H_

#include <string>

#include "absl/status/status.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

inline constexpr int kMaxRanksPerRequest = 4096;  // The hostfile's slot limit.

// 1-128 characters of [A-Za-z0-9._-], not starting with '.' (it names a directory).
bool ValidJobId(const std::string& id);

// InvalidArgument naming the field (and the rank) for: a bad job id; no ranks or more than
// kMaxRanksPerRequest; a negative or repeated rank; an empty argv or argv[0]; an env entry that
// is not KEY=VALUE with KEY of [A-Za-z_][A-Za-z0-9_]*; a NUL byte in argv, env, cwd or log_dir
// (exec would cut the string there silently).
absl::Status ValidateLaunchRequest(const v1::LaunchRequest& request);

// InvalidArgument for a bad job id, a signal outside 1-64 or a negative rank.
absl::Status ValidateSignalRequest(const v1::SignalRequest& request);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_REQUEST_VALIDATION_H_
