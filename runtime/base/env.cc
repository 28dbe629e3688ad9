// GetEnv: the one getenv for ZR_* variables.
#include "base/env.h"

#include <cstdlib>

namespace zerorun {

bool IsEnvName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string GetEnv(const EnvVar& var) {
  const char* value = std::getenv(var.name);
  return value != nullptr && *value != '\0' ? value : var.default_value;
}

std::string ZerorunHome() {
  const std::string home = GetEnv(kEnvHome);
  if (!home.empty()) return home;
  const char* user_home = std::getenv("HOME");
  return std::string(user_home != nullptr && *user_home != '\0' ? user_home : "/tmp") + "/.zerorun";
}

}  // namespace zerorun
