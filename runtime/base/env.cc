// GetEnv: the one getenv for ZR_* variables.
#include "base/env.h"

#include <cstdlib>

namespace zerorun {

std::string GetEnv(const EnvVar& var) {
  const char* value = std::getenv(var.name);
  return value != nullptr && *value != '\0' ? value : var.default_value;
}

}  // namespace zerorun
