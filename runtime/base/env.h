// Every ZR_* environment variable zerorun reads, declared once with its default and meaning.
// Nothing else in the project calls getenv for a ZR_* name.
#ifndef ZERORUN_RUNTIME_BASE_ENV_H_
#define ZERORUN_RUNTIME_BASE_ENV_H_

#include <string>

namespace zerorun {

struct EnvVar {
  const char* name;
  const char* default_value;
  const char* doc;
};

// NVML library the node agent dlopens to find GPUs; a missing library means zero GPUs.
inline constexpr EnvVar kEnvNvmlLibrary = {
    "ZR_NVML_LIBRARY", "libnvidia-ml.so.1",
    "NVML shared library loaded with dlopen by the node agent's GPU probe"};

// Value of `var`, or its default when unset or empty.
std::string GetEnv(const EnvVar& var);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_ENV_H_
