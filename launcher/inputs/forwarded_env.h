// What of the launcher's environment reaches every rank on every node (a rank on this machine
// inherits everything; remote ranks get only this), by DeepSpeed's rule plus an explicit flag:
// names starting with NCCL, PYTHON, UCX, MV2 or MLFLOW; `.deepspeed_env` (~/ then ./, the
// later file winning per key; DS_ENV_FILE renames it); `--env KEY[=VALUE]`, last. zerorun's own
// secrets (ZR_SECRET, ZERORUN_*) never.
#ifndef ZERORUN_LAUNCHER_INPUTS_FORWARDED_ENV_H_
#define ZERORUN_LAUNCHER_INPUTS_FORWARDED_ENV_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun::launcher {

struct ForwardedEnv {
  std::map<std::string, std::string> vars;     // KEY -> VALUE.
  std::map<std::string, std::string> sources;  // KEY -> where it came from ("NCCL*", "file:3").
  std::vector<std::string> files;              // The .deepspeed_env files read.
  std::vector<std::string> Entries() const;    // "KEY=VALUE", sorted by key.
};

// `environ` is the launcher's environment, `home` and `cwd` where .deepspeed_env is looked
// for. InvalidArgument (exit 65) naming file:line for a .deepspeed_env line that is not
// KEY=VALUE (DeepSpeed crashes on those; blank lines and # comments are skipped here), and for
// an --env that names a variable that is unset or not a valid name; PermissionDenied for a
// zerorun secret given with --env.
absl::StatusOr<ForwardedEnv> CollectForwardedEnv(const std::vector<std::string>& env_flags,
                                                 const char* const* environ,
                                                 const std::string& home, const std::string& cwd);

// True for the names zerorun never hands to a rank from the launcher's environment.
bool IsZerorunSecret(const std::string& name);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_INPUTS_FORWARDED_ENV_H_
