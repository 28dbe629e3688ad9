// DeepSpeed config validation (strict and lenient blocks, types, the silently ignored settings of
// reference section 20) and the effective config with DeepSpeed 0.19.6's defaults filled in.
#ifndef ZERORUN_RUNTIME_DSCONFIG_DS_CONFIG_H_
#define ZERORUN_RUNTIME_DSCONFIG_DS_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "dsconfig/config_json.h"
#include "dsconfig/finding.h"
#include "nlohmann/json.hpp"

namespace zerorun::dsconfig {

// Checks `doc` against the vocabulary. Every problem becomes a Finding (check "config"):
//   CRITICAL 65: unknown key in a strict block (with did-you-mean), wrong type, a fractional
//     value in an integer field, a bad enum value, settings DeepSpeed rejects at init
//     (max_grad_norm in optimizer params, aio inside zero_optimization);
//   CRITICAL 78: contradictory settings (fp16 and bf16 both on, nvme offload without nvme_path,
//     partial offload below stage 3, a deprecated key next to its replacement, ...);
//   WARN: what DeepSpeed ignores silently (unknown top-level keys, offload_param below stage 3,
//     nvme optimizer offload below stage 3, aio.thread_count, ...).
// "auto" values are never errors here; see auto_values.h.
std::vector<Finding> ValidateConfig(const JsonDocument& doc);

// Facts the launcher needs, read from a (resolved) config with defaults applied.
struct ConfigSummary {
  int stage = 0;
  bool fp16 = false;
  bool bf16 = false;
  bool grad_accum_fp32 = false;            // data_types.grad_accum_dtype "fp32".
  std::string offload_optimizer = "none";  // none | cpu | nvme
  std::string offload_param = "none";
  std::optional<std::string> optimizer_nvme_path;  // Set only when device is nvme.
  std::optional<std::string> param_nvme_path;
  // offload_optimizer device nvme below stage 3: DeepSpeed runs it as cpu and ignores the path
  // (offload_optimizer above says "cpu"), libzerorun uses it. The path, for its programs.
  std::optional<std::string> optimizer_nvme_path_libzerorun;
  double sub_group_size = 1e9;     // zero_optimization.sub_group_size: an NVMe chunk's elements.
  int optimizer_buffer_count = 4;  // offload_optimizer.buffer_count: the NVMe ring's buffers.
  // The optimizer state goes to NVMe (DeepSpeed's stage 3, or libzerorun's path below it).
  bool optimizer_on_nvme() const {
    return offload_optimizer == "nvme" || optimizer_nvme_path_libzerorun.has_value();
  }
};
ConfigSummary Summarize(const nlohmann::json& config);

// The config with every known default filled in (blocks the user did not open stay closed,
// except zero_optimization, fp16 and bf16), overlap_comm resolved from the stage as DeepSpeed
// does, and "auto" values left as written unless already replaced.
nlohmann::json EffectiveConfig(const nlohmann::json& config);

// Value at dotted `path`, or nullptr.
const nlohmann::json* Lookup(const nlohmann::json& root, const std::string& path);
nlohmann::json* Lookup(nlohmann::json& root, const std::string& path);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_DS_CONFIG_H_
