// The names of the environment variables every rank gets, declared once: the launcher writes
// them, zerorund adds ZERORUN_CONFIG, and libzerorun's InitFromEnv and CoordinatorClient read them.
#ifndef ZERORUN_RUNTIME_BASE_RANK_ENV_H_
#define ZERORUN_RUNTIME_BASE_RANK_ENV_H_

namespace zerorun::rank_env {

// torchrun / DeepSpeed names.
inline constexpr char kRank[] = "RANK";
inline constexpr char kLocalRank[] = "LOCAL_RANK";
inline constexpr char kWorldSize[] = "WORLD_SIZE";
inline constexpr char kLocalSize[] = "LOCAL_SIZE";
inline constexpr char kLocalWorldSize[] = "LOCAL_WORLD_SIZE";
inline constexpr char kNodeRank[] = "NODE_RANK";
inline constexpr char kGroupRank[] = "GROUP_RANK";
inline constexpr char kCrossRank[] = "CROSS_RANK";
inline constexpr char kCrossSize[] = "CROSS_SIZE";
inline constexpr char kGroupWorldSize[] = "GROUP_WORLD_SIZE";
inline constexpr char kMasterAddr[] = "MASTER_ADDR";
inline constexpr char kMasterPort[] = "MASTER_PORT";
inline constexpr char kCudaVisibleDevices[] = "CUDA_VISIBLE_DEVICES";
// torchrun's restart counters (0 on the first attempt), set alongside zerorun's below.
inline constexpr char kTorchRestartCount[] = "TORCHELASTIC_RESTART_COUNT";
inline constexpr char kTorchMaxRestarts[] = "TORCHELASTIC_MAX_RESTARTS";

// zerorun's.
inline constexpr char kJobId[] = "ZERORUN_JOB_ID";
inline constexpr char kCoordinator[] = "ZERORUN_COORDINATOR";  // host:port of the coordinator.
inline constexpr char kJobSecret[] = "ZERORUN_JOB_SECRET";
// The job's coordinator CA (PEM, public): the coordinator serves TLS with a certificate of it.
inline constexpr char kCoordinatorCa[] = "ZERORUN_COORDINATOR_CA";
inline constexpr char kConfig[] = "ZERORUN_CONFIG";       // The effective config file.
inline constexpr char kNodeAddr[] = "ZERORUN_NODE_ADDR";  // Where peers reach this node.
// --max-restarts: the attempt (0 first, n after the n-th whole-job restart) and the limit.
inline constexpr char kRestartCount[] = "ZERORUN_RESTART_COUNT";
inline constexpr char kMaxRestarts[] = "ZERORUN_MAX_RESTARTS";
// The launcher's binary; zerorund puts its directory first on the rank's PATH when it exists
// on that node (else the zerorun next to zerorund), so `zerorun report` works from any rank.
inline constexpr char kZerorunBin[] = "ZERORUN_BIN";

// Interface selection, as PyTorch's Gloo and NCCL read it: the rank binds and advertises the
// first IPv4 address of the first named interface that has one (a comma-separated list).
inline constexpr char kGlooSocketIfname[] = "GLOO_SOCKET_IFNAME";
inline constexpr char kNcclSocketIfname[] = "NCCL_SOCKET_IFNAME";

}  // namespace zerorun::rank_env

#endif  // ZERORUN_RUNTIME_BASE_RANK_ENV_H_
