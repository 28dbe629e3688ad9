// The environment a rank starts with on this node: the launch's variables (the rank contract,
// the launcher's forwarded ones), the resolved config, zerorun on the PATH, and, for ranks of
// zerorund's own user, zerorund's environment less its credentials; for ranks of another user
// (a root zerorund's run-as), a clean one that holds nothing of zerorund's.
#ifndef ZERORUN_WORKER_RANK_ENVIRONMENT_H_
#define ZERORUN_WORKER_RANK_ENVIRONMENT_H_

#include <string>
#include <vector>

#include "run_as.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

// The PATH a user's ranks start with on a root zerorund (zerorun's directory goes first).
inline constexpr char kCleanPath[] = "/usr/local/bin:/usr/bin:/bin";

// KEY=VALUE strings for execve. `config`: the resolved config's path ("" for none); `run_as`:
// the user the ranks run as (null: zerorund's own). Any thread; reads this process's environ.
std::vector<std::string> RankEnvironment(const v1::RankSpec& spec, const std::string& config,
                                         const RunAs* run_as);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_RANK_ENVIRONMENT_H_
