// StageOptions / FormatStageAdvice / PcieOnly.
#include "preflight/stage_advice.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "preflight/estimate.h"

namespace zerorun::launcher {

std::vector<StageOption> StageOptions(double p, double largest, int gpus_per_node, int nodes) {
  struct Choice {
    int stage;
    const char* opt;
    const char* param;
  };
  const Choice choices[] = {{0, "none", "none"}, {1, "none", "none"}, {2, "none", "none"},
                            {2, "cpu", "none"},  {3, "none", "none"}, {3, "cpu", "none"},
                            {3, "cpu", "cpu"}};
  const int world = gpus_per_node * nodes;
  std::vector<StageOption> out;
  for (const Choice& c : choices) {
    const MemoryNeed need = ModelStateNeed(c.stage, c.opt, c.param, /*cpu_job=*/false, p, largest,
                                           gpus_per_node, world, nodes);
    // ZeRO paper: data parallelism and stages 1-2 move 2P per step (reduce-scatter + all-gather
    // of the gradients or parameters), stage 3 3P (parameters gathered in forward and backward).
    out.push_back({c.stage, c.opt, c.param, need.gpu_bytes_per_gpu, need.host_bytes_per_node,
                   c.stage == 3 ? 1.5 : 1.0});
  }
  return out;
}

std::string FormatStageAdvice(double p, double largest, int gpus_per_node, int nodes,
                              double gpu_memory) {
  const double gib = 1024.0 * 1024 * 1024;
  std::string out = absl::StrFormat(
      "Which stage: %s parameters on %d node(s) x %d GPU(s)%s\n  %-52s %8s %12s %5s %s\n",
      absl::StrFormat("%.3g", p), nodes, gpus_per_node,
      gpu_memory > 0 ? absl::StrFormat(", %.1f GiB per GPU", gpu_memory / gib) : "", "option",
      "GPU GiB", "CPU GiB/node", "fits", "communication per step vs stage 2");
  const std::vector<StageOption> options = StageOptions(p, largest, gpus_per_node, nodes);
  const StageOption* pick = nullptr;
  for (const StageOption& o : options) {
    const bool fits = gpu_memory > 0 && o.gpu_bytes <= gpu_memory;
    if (fits && pick == nullptr) pick = &o;
    const std::string name = absl::StrCat(
        "stage ", o.stage, o.offload_optimizer == "none" ? "" : " + offload_optimizer cpu",
        o.offload_param == "none" ? "" : " + offload_param cpu");
    absl::StrAppendFormat(&out, "  %-52s %8.2f %12.2f %5s %.1fx%s\n", name, o.gpu_bytes / gib,
                          o.cpu_bytes_per_node / gib, gpu_memory > 0 ? (fits ? "yes" : "no") : "?",
                          o.comm_vs_stage2,
                          o.offload_optimizer == "none" ? "" : " (+ host<->GPU copies)");
  }
  if (gpu_memory <= 0) {
    absl::StrAppend(&out,
                    "  pass --gpu-memory-gib G for a verdict (model states only; "
                    "activations and buffers need room too)\n");
  } else if (pick == nullptr) {
    absl::StrAppend(&out,
                    "  nothing fits: add GPUs or nodes, or offload to NVMe (ZeRO-Infinity)\n");
  } else {
    absl::StrAppend(&out, "  smallest that fits: stage ", pick->stage,
                    pick->offload_optimizer == "none" ? "" : " with offload_optimizer cpu",
                    pick->offload_param == "none" ? "" : " and offload_param cpu",
                    " (model states only; leave room for activations)\n");
  }
  return out;
}

bool PcieOnly(const v1::ProbeReply& reply, const std::vector<int>& slots, std::string* matrix) {
  if (slots.size() < 2) return false;
  std::vector<std::string> pairs;
  for (size_t i = 0; i < slots.size(); ++i) {
    for (size_t j = i + 1; j < slots.size(); ++j) {
      const int a = slots[i], b = slots[j];
      if (a < 0 || b < 0 || a >= reply.topology_size() || b >= reply.topology(a).links_size()) {
        return false;  // No matrix: no verdict.
      }
      const std::string& link = reply.topology(a).links(b);
      if (absl::StartsWith(link, "NV")) return false;
      pairs.push_back(absl::StrCat("GPU", a, "-GPU", b, " ", link));
    }
  }
  *matrix = absl::StrJoin(pairs, ", ");
  return true;
}

}  // namespace zerorun::launcher
