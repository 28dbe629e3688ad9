// CollectForwardedEnv: prefixes, .deepspeed_env files, --env.
#include "inputs/forwarded_env.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/env.h"
#include "base/rank_env.h"

namespace zerorun::launcher {
namespace {

absl::Status ReadEnvFile(const std::string& path, ForwardedEnv* out) {
  std::ifstream in(path);
  if (!in) return absl::OkStatus();  // Absent: nothing to read (DeepSpeed's rule too).
  out->files.push_back(path);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    const size_t eq = text.find('=');
    const std::string key(absl::StripAsciiWhitespace(text.substr(0, eq)));
    if (eq == absl::string_view::npos || !IsEnvName(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", number, ": '", text.substr(0, 80),
          "' is not KEY=VALUE. Fix: one KEY=VALUE per line (DeepSpeed's .deepspeed_env form)"));
    }
    if (IsZerorunSecret(key)) {
      return absl::PermissionDeniedError(absl::StrCat(
          path, ":", number, ": ", key, " is zerorun's secret and never goes to ranks"));
    }
    out->vars[key] = std::string(absl::StripAsciiWhitespace(text.substr(eq + 1)));
    out->sources[key] = absl::StrCat(path, ":", number);
  }
  return absl::OkStatus();
}

}  // namespace

bool IsZerorunSecret(const std::string& name) {
  return name == kEnvSecret.name || absl::StartsWith(name, "ZERORUN_");
}

std::vector<std::string> ForwardedEnv::Entries() const {
  std::vector<std::string> out;
  for (const auto& [key, value] : vars) out.push_back(absl::StrCat(key, "=", value));
  return out;
}

absl::StatusOr<ForwardedEnv> CollectForwardedEnv(const std::vector<std::string>& env_flags,
                                                 const char* const* environ,
                                                 const std::string& home, const std::string& cwd) {
  ForwardedEnv out;
  std::map<std::string, std::string> launcher;
  for (const char* const* e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) launcher[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [key, value] : launcher) {
    for (const char* prefix : {"NCCL", "PYTHON", "UCX", "MV2", "MLFLOW"}) {
      if (absl::StartsWith(key, prefix) && !IsZerorunSecret(key)) {
        out.vars[key] = value;
        out.sources[key] = absl::StrCat(prefix, "*");
      }
    }
  }
  const auto ds_env = launcher.find("DS_ENV_FILE");
  const std::string name = ds_env != launcher.end() ? ds_env->second : ".deepspeed_env";
  for (const std::string& dir : {home, cwd}) {
    const std::string path = name[0] == '/' ? name : absl::StrCat(dir, "/", name);
    if (absl::Status s = ReadEnvFile(path, &out); !s.ok()) return s;
    if (name[0] == '/') break;
  }
  for (const std::string& flag : env_flags) {
    const size_t eq = flag.find('=');
    const std::string key = flag.substr(0, eq);
    if (!IsEnvName(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--env ", flag, ": '", key, "' is not a variable name"));
    }
    if (IsZerorunSecret(key)) {
      return absl::PermissionDeniedError(
          absl::StrCat("--env ", key, ": zerorun's secrets never go to ranks"));
    }
    if (eq == std::string::npos) {
      const auto it = launcher.find(key);
      if (it == launcher.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--env ", key, ": it is not set here. Fix: --env ", key, "=VALUE, or export it"));
      }
      out.vars[key] = it->second;
    } else {
      out.vars[key] = flag.substr(eq + 1);
    }
    out.sources[key] = "--env";
  }
  return out;
}

}  // namespace zerorun::launcher
