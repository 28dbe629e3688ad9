// The rank entry point of libzerorun: one call gives a C++ train program its rank facts, the
// job's effective DeepSpeed config, the rendezvous store, the communicator and the coordinator
// client, from the environment zerorun (or torchrun-style variables) set. No bootstrap of its own.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_INIT_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_INIT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "zerorun/comm.h"
#include "zerorun/coordinator_client.h"
#include "zerorun/kv_store.h"
#include "zerorun/training_config.h"

namespace zerorun {

struct InitOptions {
  // The program's --deepspeed_config. Under zerorun ZERORUN_CONFIG (the launcher's resolved
  // effective config of this same file) is read instead; outside zerorun this file is resolved
  // through dsconfig for WORLD_SIZE ranks, exactly as pre-flight would.
  std::string config_path;
  // config_path wins over ZERORUN_CONFIG: a config the program computed itself (what HF Trainer
  // and Accelerate hand DeepSpeed's initialize, their "auto" values filled), resolved through
  // dsconfig as outside zerorun.
  bool config_path_wins = false;
  // The program's arguments: outside zerorun, "auto" values are filled from the HF-style ones
  // (dsconfig::HfValueArguments) exactly as pre-flight fills them.
  std::vector<std::string> train_args;
  absl::Duration heartbeat = absl::Seconds(1);  // Coordinator heartbeat period (under zerorun).
  Device device = Device::Cpu();  // Where the rank computes: picks the communicator's backend.
};

struct RankContext {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  int local_world_size = 1;
  int node_rank = 0;
  std::string job_id;       // ZERORUN_JOB_ID, or "local".
  std::string address;      // What this rank binds and advertises to its peers.
  std::string config_path;  // The file the config was read from.
  nlohmann::json config;    // The effective config (defaults filled, batch triple written).
  dsconfig::TrainingConfig training;               // Its typed keys.
  std::unique_ptr<CoordinatorClient> coordinator;  // Null when not started by zerorun.
  std::unique_ptr<KvStore> store;
  std::unique_ptr<Communicator> comm;
};

// Rank facts from RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK (a single process
// when none is set). The config: see InitOptions; no config at all is DeepSpeed's "Either
// train_batch_size or train_micro_batch_size_per_gpu needs to be provided". The store: the
// coordinator's (ZERORUN_COORDINATOR, heartbeat started), else the directory $ZR_STORE_DIR, else
// memory for one rank. The address: the first IPv4 address of GLOO_SOCKET_IFNAME (else
// NCCL_SOCKET_IFNAME), else ZERORUN_NODE_ADDR (the node as the hostfile names it), else
// 127.0.0.1. The communicator: CreateCommunicator for options.device (Gloo on the CPU), with
// ZR_COMM_TIMEOUT / DEEPSPEED_TIMEOUT.
// Errors carry a breadcrumb: "rank R: <step>: <cause>".
absl::StatusOr<RankContext> InitFromEnv(const InitOptions& options);

// The first IPv4 address of the first interface in `ifnames` (comma-separated) that has one;
// NotFound naming the interfaces that exist when none matches.
absl::StatusOr<std::string> InterfaceAddress(const std::string& ifnames);

// ZR_COMM_TIMEOUT (seconds), else DEEPSPEED_TIMEOUT (minutes), else 5 minutes.
absl::StatusOr<absl::Duration> CommTimeoutFromEnv();

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_INIT_H_
