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

// Where the launcher records running jobs (<home>/jobs/<job_id>/job.json) and zerorund keeps
// job directories by default (<home>/agent).
inline constexpr EnvVar kEnvHome = {"ZR_HOME", "",
                                    "zerorun's state directory; default $HOME/.zerorun"};

// The cluster secret zerorun and zerorund share when no --secret-file is given.
inline constexpr EnvVar kEnvSecret = {"ZR_SECRET", "",
                                      "cluster secret for zerorund (agents) calls"};

// DeepSpeed's ssh options for pdsh; `zerorun --launcher ssh` (or pdsh) passes them to ssh.
inline constexpr EnvVar kEnvPdshSshArgs = {"PDSH_SSH_ARGS_APPEND", "",
                                           "options zerorun --launcher ssh gives ssh"};

// The launcher's mTLS credentials directory when no --tls-dir is given (zerorun cluster init).
inline constexpr EnvVar kEnvTlsDir = {"ZR_TLS_DIR", "",
                                      "mTLS credentials directory of zerorun (ca.crt, cert.*)"};

// Timeout of every collective and of the rendezvous, in seconds (DEEPSPEED_TIMEOUT, in minutes,
// is read when this is unset).
inline constexpr EnvVar kEnvCommTimeout = {"ZR_COMM_TIMEOUT", "",
                                           "collective and rendezvous timeout in seconds (300)"};

// A directory shared by ranks on one machine, as their rendezvous store when no zerorun
// coordinator is there (ranks started by hand).
inline constexpr EnvVar kEnvStoreDir = {"ZR_STORE_DIR", "",
                                        "rendezvous directory for ranks started without zerorun"};

// True for a name a process environment can carry as KEY in KEY=VALUE: [A-Za-z_][A-Za-z0-9_]*.
bool IsEnvName(const std::string& name);

// Value of `var`, or its default when unset or empty.
std::string GetEnv(const EnvVar& var);

// ZR_HOME, or $HOME/.zerorun (/tmp/.zerorun without HOME).
std::string ZerorunHome();

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_ENV_H_
