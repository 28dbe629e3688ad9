// Memory estimators: DeepSpeed's formulas for ZeRO-2/3, the ZeRO paper's for stages 0/1.
#include "preflight/estimate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "offload/swap_bytes.h"

namespace zerorun::launcher {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string Header(int gpus_per_node, int num_nodes) {
  return absl::StrFormat(
      "Estimated memory needed for params, optim states and gradients for a:\n"
      "HW: Setup with %d node%s, %d GPU%s per node.\n",
      num_nodes, num_nodes > 1 ? "s" : "", gpus_per_node, gpus_per_node > 1 ? "s" : "");
}

std::string Rows(const std::vector<EstimateRow>& rows) {
  std::string out = "  per CPU  |  per GPU |   Options\n";
  for (const EstimateRow& row : rows) {
    absl::StrAppendFormat(&out, "  %7.2fGB | %6.2fGB | %s\n", row.cpu_bytes / kGiB,
                          row.gpu_bytes / kGiB, row.options);
  }
  return out;
}

// 10000000 -> "10M", 7e9 -> "7B": parameter counts as people write them.
std::string Count(double n) {
  if (n >= 1e9) return absl::StrFormat("%gB", n / 1e9);
  if (n >= 1e6) return absl::StrFormat("%gM", n / 1e6);
  if (n >= 1e3) return absl::StrFormat("%gK", n / 1e3);
  return absl::StrFormat("%g", n);
}

}  // namespace

std::vector<EstimateRow> Zero2Estimate(double p, int g, int n, double f) {
  const double t = static_cast<double>(g) * n;
  return {
      {p * std::max(4 * t, 16.0) * f, 2 * p, "offload_optimizer=cpu "},
      {4 * p * g * f, 2 * p + std::floor(18 * p / t), "offload_optimizer=none"},
  };
}

std::vector<EstimateRow> Zero3Estimate(double p, double l, int g, int n, double f) {
  const double t = static_cast<double>(g) * n;
  const double gpus_factor = 1.0 / n;
  const double largest = 4 * l;
  std::vector<EstimateRow> rows;
  for (const char* offload_param : {"cpu", "none"}) {
    for (const char* offload_optimizer : {"cpu", "none"}) {
      if (std::string(offload_param) == "cpu" && std::string(offload_optimizer) == "none") {
        continue;  // DeepSpeed does not offer parameters without the optimizer.
      }
      for (int zero_init : {1, 0}) {
        double gpu = 0, cpu = 0;
        if (std::string(offload_param) == "cpu") {
          gpu = largest;
          cpu = zero_init ? p * 18 * gpus_factor * f : p * std::max(4.0 * g, 18 * gpus_factor) * f;
        } else if (std::string(offload_optimizer) == "cpu") {
          gpu = largest + std::floor(2 * p / t);
          cpu = zero_init ? p * 16 * gpus_factor * f : p * std::max(4.0 * g, 16 * gpus_factor) * f;
        } else {
          gpu = largest + std::floor(18 * p / t);
          cpu = zero_init ? largest * g * f : 4 * p * g * f;
        }
        rows.push_back({cpu, gpu,
                        absl::StrFormat("offload_param=%-4s, offload_optimizer=%-4s, zero_init=%d",
                                        offload_param, offload_optimizer, zero_init)});
      }
    }
  }
  return rows;
}

std::string FormatZero2Table(double p, int g, int n) {
  return absl::StrCat(
      Header(g, n),
      absl::StrFormat("SW: Model with %dM total params.\n", static_cast<long long>(p / 1e6)),
      Rows(Zero2Estimate(p, g, n)));
}

std::string FormatZero3Table(double p, double l, int g, int n) {
  return absl::StrCat(
      Header(g, n),
      absl::StrFormat("SW: Model with %dM total params, %dM largest layer params.\n",
                      static_cast<long long>(p / 1e6), static_cast<long long>(l / 1e6)),
      Rows(Zero3Estimate(p, l, g, n)));
}

MemoryNeed ModelStateNeed(int stage, const std::string& offload_optimizer,
                          const std::string& offload_param, bool cpu_job, double p, double l,
                          int local_ranks, int world_size, int num_nodes) {
  const double t = std::max(1, world_size);
  const int g = std::max(1, local_ranks);
  const int n = std::max(1, num_nodes);
  MemoryNeed need;
  if (cpu_job) {
    static const char* const kFormula[] = {"16P", "8P + 8P/W", "4P + 12P/W", "16P/W"};
    const double per_rank[] = {16 * p, 8 * p + 8 * p / t, 4 * p + 12 * p / t, 16 * p / t};
    const int s = std::clamp(stage, 0, 3);
    need.host_bytes_per_node = per_rank[s] * local_ranks;
    need.formula = absl::StrCat("fp32 model states ", kFormula[s], " per rank x ", local_ranks,
                                " local rank(s), P=", Count(p), ", W=", world_size);
    return need;
  }
  const bool opt_off = offload_optimizer != "none";
  const bool param_off = offload_param != "none";
  const double f = 1.5;
  if (stage >= 3) {
    const auto rows = Zero3Estimate(p, l, g, n, f);
    const EstimateRow& row = param_off ? rows[0] : (opt_off ? rows[2] : rows[4]);
    need = {row.gpu_bytes, row.cpu_bytes,
            absl::StrCat("DeepSpeed ZeRO-3 estimator, ", row.options)};
  } else if (stage == 2 || opt_off) {
    const auto rows = Zero2Estimate(p, g, n, f);
    const EstimateRow& row = opt_off ? rows[0] : rows[1];
    need = {row.gpu_bytes, row.cpu_bytes,
            absl::StrCat("DeepSpeed ZeRO-2 estimator, ", row.options)};
  } else if (stage == 1) {
    need = {4 * p + 12 * p / t, 4 * p * g * f, "ZeRO-1: 4P + 12P/W per GPU"};
  } else {
    need = {16 * p, 4 * p * g * f, "no ZeRO: 16P per GPU"};
  }
  absl::StrAppend(&need.formula, ", P=", Count(p), ", W=", world_size);
  return need;
}

namespace {

SwapLayoutFacts OptimizerFacts(const dsconfig::ConfigSummary& config) {
  SwapLayoutFacts facts;
  facts.stage = config.stage;
  facts.sixteen = config.bf16 || config.fp16;
  facts.grad_accum_fp32 = config.grad_accum_fp32;
  return facts;
}

// NvmeStateStore::Create's ring: buffer_count counts one array's buffers.
int RingChunks(const dsconfig::ConfigSummary& config) {
  const bool sixteen = config.bf16 || config.fp16;
  const int arrays = 2 + (sixteen ? 1 : 0) + (config.stage >= 2 ? 1 : 0);
  return std::max(3, config.optimizer_buffer_count / arrays);
}

}  // namespace

double NvmeSwapBytes(double p, const dsconfig::ConfigSummary& config, int local_ranks,
                     int world_size) {
  const bool params_on_nvme = config.offload_param == "nvme";
  const double deepspeed = 12 * p + (params_on_nvme ? 2 * p : 0);
  SwapLayoutFacts facts = OptimizerFacts(config);
  facts.params_on_nvme = params_on_nvme;
  const double zerorun = SwapBytesPerShardElement(facts) * p;
  return local_ranks * std::max(deepspeed, zerorun) / std::max(1, world_size) * 1.2;
}

double NvmeRingBytes(double p, double l, const dsconfig::ConfigSummary& config, int local_ranks,
                     int world_size) {
  if (!config.optimizer_on_nvme()) return 0;
  const double w = std::max(1, world_size);
  const double shard = std::ceil(p / w);
  const double chunk = std::min(config.sub_group_size, std::ceil((l > 0 ? l : p) / w));
  // The ring, never more than the shard, and one chunk more for the synchronous bounce buffer.
  const double elements = std::min(RingChunks(config) * chunk, shard) + chunk;
  return local_ranks * elements * SwapBytesPerShardElement(OptimizerFacts(config));
}

double NvmeOptimizerBytes(double p, const dsconfig::ConfigSummary& config, int local_ranks,
                          int world_size) {
  if (!config.optimizer_on_nvme()) return 0;
  return local_ranks * std::ceil(p / std::max(1, world_size)) *
         SwapBytesPerShardElement(OptimizerFacts(config));
}

std::string NvmeRingFormula(const dsconfig::ConfigSummary& config, double ring_bytes) {
  return absl::StrCat("NVMe read-ahead ring ", HumanBytes(ring_bytes), ": ", RingChunks(config),
                      " chunks of min(sub_group_size ", Count(config.sub_group_size),
                      ", largest layer/W) + 1 bounce x ",
                      SwapBytesPerShardElement(OptimizerFacts(config)), " B per rank");
}

std::string HumanBytes(double bytes) {
  if (bytes >= kGiB) return absl::StrFormat("%.2f GiB", bytes / kGiB);
  if (bytes >= 1024.0 * 1024.0) return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024.0));
  return absl::StrFormat("%.0f KiB", bytes / 1024.0);
}

}  // namespace zerorun::launcher
