// The environment a rank starts with (see rank_environment.h).
#include "rank_environment.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/env.h"
#include "base/rank_env.h"
#include "proc_util.h"

extern char** environ;

namespace zerorun::worker {
namespace {

// ZERORUN_BIN names the launcher's binary; where it is not on this node, the zerorun installed
// next to this daemon stands in. Its directory goes first on the rank's PATH, so a rank's
// `subprocess.run(["zerorun", "report", ...])` works with no PATH of the user's.
void AddZerorunToPath(std::vector<std::string>* env, const char* path) {
  const std::string prefix = absl::StrCat(rank_env::kZerorunBin, "=");
  auto it = std::find_if(env->begin(), env->end(),
                         [&](const std::string& kv) { return absl::StartsWith(kv, prefix); });
  std::string bin = it == env->end() ? "" : it->substr(prefix.size());
  if (bin.empty() || access(bin.c_str(), X_OK) != 0) {
    const std::string here = SelfExecutable();
    const std::string sibling = here.substr(0, here.rfind('/') + 1) + "zerorun";
    bin = access(sibling.c_str(), X_OK) == 0 ? sibling : "";
  }
  if (it != env->end()) env->erase(it);
  if (bin.empty()) return;
  env->push_back(prefix + bin);
  env->push_back(absl::StrCat("PATH=", bin.substr(0, bin.rfind('/')), ":",
                              path != nullptr ? path : "/usr/bin:/bin"));
}

// The rank's environment. Ranks of zerorund's own user: the agent's environment, minus the
// cluster secret, plus the launch's. Ranks of another user (a root zerorund's run-as): a clean
// one, nothing of zerorund's: PATH kCleanPath (zerorun's directory first), that user's HOME,
// USER, LOGNAME and SHELL, then what the launch carries (the launcher's forwarded variables and
// the rank contract).
}  // namespace

std::vector<std::string> RankEnvironment(const v1::RankSpec& spec, const std::string& config,
                                         const RunAs* run_as) {
  std::vector<std::string> additions(spec.env().begin(), spec.env().end());
  if (run_as != nullptr) {
    additions.push_back("HOME=" + run_as->home);
    additions.push_back("USER=" + run_as->name);
    additions.push_back("LOGNAME=" + run_as->name);
    additions.push_back("SHELL=" + run_as->shell);
  }
  if (!config.empty()) additions.push_back(absl::StrCat(rank_env::kConfig, "=", config));
  const char* path = run_as != nullptr ? kCleanPath : std::getenv("PATH");
  AddZerorunToPath(&additions, path);
  std::set<std::string> overridden;
  for (const std::string& kv : additions) overridden.insert(kv.substr(0, kv.find('=')));
  std::vector<std::string> env;
  if (run_as != nullptr) {
    if (overridden.count("PATH") == 0) env.push_back(absl::StrCat("PATH=", kCleanPath));
  } else {
    overridden.insert(kEnvSecret.name);  // zerorun's credentials never reach a rank.
    overridden.insert(kEnvTlsDir.name);
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      if (overridden.count(kv.substr(0, kv.find('='))) == 0) env.push_back(kv);
    }
  }
  env.insert(env.end(), additions.begin(), additions.end());
  return env;
}

}  // namespace zerorun::worker
