// What one run of zerorun was asked for (PreflightOptions): the hostfile, the resource filter,
// the DeepSpeed config, the device, the flags' "auto" inputs, the train command and the
// environment every rank gets. Pre-flight checks exactly this and a launch runs it; a launch
// backend that starts the agents itself fills in where they serve.
#ifndef ZERORUN_LAUNCHER_INPUTS_PREFLIGHT_OPTIONS_H_
#define ZERORUN_LAUNCHER_INPUTS_PREFLIGHT_OPTIONS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dsconfig/auto_values.h"
#include "inputs/forwarded_env.h"
#include "inputs/resource_filter.h"
#include "inputs/train_command.h"
#include "zerorun/v1/common.pb.h"

namespace zerorun::launcher {

using dsconfig::AutoInputs;
using dsconfig::AutoValue;

// DeepSpeed's default hostfile, used when --hostfile is not given and it exists.
inline constexpr char kDefaultHostfile[] = "/job/hostfile";

struct AgentEndpoint {
  std::string address;
  int port = 0;
};

struct PreflightOptions {
  std::optional<std::string> hostfile;  // Unset: /job/hostfile if present, else this machine.
  std::string default_hostfile = kDefaultHostfile;
  std::string config;  // Empty: taken from --deepspeed_config/--deepspeed in
                       // the train arguments, as HF and DeepSpeed scripts pass it.
  FilterOptions filter;
  v1::Device device = v1::DEVICE_GPU;
  AutoInputs autos;              // Flags only; train_args and world_size are filled in.
  std::optional<double> params;  // Model parameters, for memory and swap estimates.
  std::optional<double> largest_layer_params;
  std::vector<std::string> checkpoint_dirs;
  TrainCommand command;              // program empty: no train_bin given.
  ForwardedEnv env;                  // What every rank on every node gets (forwarded_env.h).
  bool strict = false;               // Unresolved "auto" is an error (78).
  std::string engine = "deepspeed";  // --engine: deepspeed or zerorun (train_command.h).
  const char* cuda_visible_devices = nullptr;  // The environment's value, or nullptr.
  // Set by a backend that started the agents itself (--launcher ssh): host name -> where its
  // agent serves, instead of the hostfile's address and agent_port. A host without one is a
  // critical row (69).
  std::map<std::string, AgentEndpoint> agent_endpoints;
};

// The hostfile a run reads: --hostfile, else the default one if it exists; "" for none.
std::string HostfilePath(const PreflightOptions& options);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_INPUTS_PREFLIGHT_OPTIONS_H_
