// DeepSpeed's ZeRO-2 and ZeRO-3 model-state memory estimators (reference section 15), the same
// formulas and the same printed tables, plus the per-rank figures pre-flight compares to memory.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_ESTIMATE_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_ESTIMATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "dsconfig/ds_config.h"

namespace zerorun::launcher {

struct EstimateRow {
  double cpu_bytes = 0;  // Per node.
  double gpu_bytes = 0;  // Per GPU.
  std::string options;   // As DeepSpeed prints them, e.g. "offload_optimizer=cpu ".
};

// estimate_zero2_model_states_mem_needs_all_cold: rows for offload_optimizer cpu, none.
std::vector<EstimateRow> Zero2Estimate(double total_params, int gpus_per_node, int num_nodes,
                                       double additional_buffer_factor = 1.5);
// estimate_zero3_model_states_mem_needs_all_cold: rows for (param, optimizer, zero_init) in
// DeepSpeed's order: cpu/cpu/1, cpu/cpu/0, none/cpu/1, none/cpu/0, none/none/1, none/none/0.
std::vector<EstimateRow> Zero3Estimate(double total_params, double largest_layer_params,
                                       int gpus_per_node, int num_nodes,
                                       double additional_buffer_factor = 1.5);

// The tables as DeepSpeed prints them (sizes in GiB labelled "GB", as DeepSpeed does).
std::string FormatZero2Table(double total_params, int gpus_per_node, int num_nodes);
std::string FormatZero3Table(double total_params, double largest_layer_params, int gpus_per_node,
                             int num_nodes);

// Model-state bytes the job needs for `stage` and offload devices ("none", "cpu", "nvme").
// GPU jobs: DeepSpeed's estimator row for stages 2 and 3 (zero_init=1), the ZeRO paper's
// mixed-precision figures for 0 (16P) and 1 (4P + 12P/T). CPU jobs hold everything in host
// memory with fp32 state: 16P, 8P + 8P/T, 4P + 12P/T, 16P/T per rank.
struct MemoryNeed {
  double gpu_bytes_per_gpu = 0;
  double host_bytes_per_node = 0;
  std::string formula;  // Human-readable, quoted in the check detail.
};
MemoryNeed ModelStateNeed(int stage, const std::string& offload_optimizer,
                          const std::string& offload_param, bool cpu_job, double total_params,
                          double largest_layer_params, int local_ranks, int world_size,
                          int num_nodes);

// Free space the NVMe swap needs on one node: local_ranks x B / world_size x 1.2, where B is the
// larger of DeepSpeed's 12P [+ 2P with parameters on nvme] (ecosystem reference 2.4) and the
// bytes libzerorun's swap files hold (offload/swap_bytes.h: 12-16P [+ 2-4P]).
double NvmeSwapBytes(double total_params, const dsconfig::ConfigSummary& config, int local_ranks,
                     int world_size);

// Host memory the NVMe optimizer store's read-ahead ring holds on one node (NvmeStateStore):
// local_ranks x (min(N x C, P/W) + C) elements x the chunk's bytes per element, C =
// min(sub_group_size, L/W) (L the largest layer, P when unknown), N = max(3, buffer_count / arrays
// per chunk), the last C for the bounce buffer of Read / Write. 0 unless the optimizer is on NVMe.
double NvmeRingBytes(double total_params, double largest_layer_params,
                     const dsconfig::ConfigSummary& config, int local_ranks, int world_size);
// The optimizer-state bytes one node's ranks keep on NVMe instead of in host memory (the swap
// layout's optimizer arrays x P/W x local_ranks); 0 unless the optimizer state is on NVMe.
double NvmeOptimizerBytes(double total_params, const dsconfig::ConfigSummary& config,
                          int local_ranks, int world_size);
// The ring's formula in words, for pre-flight's estimate row.
std::string NvmeRingFormula(const dsconfig::ConfigSummary& config, double ring_bytes);

// "1.50 GiB" style.
std::string HumanBytes(double bytes);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_ESTIMATE_H_
