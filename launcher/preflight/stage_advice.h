// Which ZeRO stage to run: the smallest stage (and offload) whose model states fit the GPUs,
// each stage's communication per step relative to stage 2, and the PCIe-only topology test
// behind pre-flight's "stage 3 on PCIe while stage 2 fits" warning.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_STAGE_ADVICE_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_STAGE_ADVICE_H_

#include <string>
#include <vector>

#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::launcher {

struct StageOption {
  int stage = 0;
  std::string offload_optimizer = "none";  // none | cpu
  std::string offload_param = "none";
  double gpu_bytes = 0;  // Model states per GPU (estimate.h's ModelStateNeed).
  double cpu_bytes_per_node = 0;
  double comm_vs_stage2 = 1;  // Bytes moved per step over stage 2's (ZeRO paper: 2P vs 3P).
};

// Every option in the order a user should prefer them (least communication and offload first):
// stages 0, 1, 2, stage 2 + CPU optimizer offload, 3, 3 + CPU optimizer, 3 + CPU optimizer and
// parameters.
std::vector<StageOption> StageOptions(double params, double largest_layer_params, int gpus_per_node,
                                      int num_nodes);

// The `zerorun estimate` table: each option's GPU and CPU bytes, whether it fits
// `gpu_memory_bytes` (0: unknown, no verdict), its communication relative to stage 2, and a
// closing line naming the first option that fits.
std::string FormatStageAdvice(double params, double largest_layer_params, int gpus_per_node,
                              int num_nodes, double gpu_memory_bytes);

// True when no two of `slots` are joined by NVLink in the node's topology matrix (cells "NV#"),
// i.e. every pair talks over PCIe or the CPU interconnect; `matrix` gets the cells for messages.
// False when the matrix is missing or there are fewer than two slots.
bool PcieOnly(const v1::ProbeReply& reply, const std::vector<int>& slots, std::string* matrix);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_STAGE_ADVICE_H_
