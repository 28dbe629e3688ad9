// The table of DeepSpeed keys libzerorun refuses, ignores or runs its own way.
#include "dsconfig/runtime_support.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dsconfig/config_json.h"
#include "dsconfig/ds_config.h"

namespace zerorun::dsconfig {
namespace {

using json = nlohmann::json;

// A key whose non-default value libzerorun refuses (refuse) or runs another way (a note).
struct Unhonoured {
  const char* key;
  json default_value;
  bool refuse;
  const char* why;
};

bool SameValue(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

class Checker {
 public:
  explicit Checker(const json& config) : config_(config) {}

  std::vector<Finding> Run() {
    Table();
    Optimizer();
    Offload();
    Precision();
    Monitors();
    Scheduler();
    return std::move(findings_);
  }

 private:
  const json* Get(const std::string& key) const {
    const json* v = Lookup(config_, key);
    return v == nullptr || v->is_null() ? nullptr : v;
  }
  bool IsTrue(const std::string& key) const {
    const json* v = Get(key);
    return v != nullptr && v->is_boolean() && v->get<bool>();
  }
  void Refuse(const std::string& key, const json& value, const std::string& fix) {
    findings_.push_back(
        {"runtime", kCritical,
         absl::StrCat(key, " is ", Dump(value), ": not supported by libzerorun. Fix: ", fix),
         kExitConfig});
  }
  void Add(Severity severity, const std::string& key, const json& value, const std::string& why) {
    findings_.push_back(
        {"runtime", severity, absl::StrCat(key, " ", Dump(value), ": ", why), kExitOk});
  }

  void Table() {
    const Unhonoured keys[] = {
        {"optimizer.params.amsgrad", false, true, "AMSGrad is not implemented"},
        {"optimizer.params.bias_correction", true, true, "AdamW always bias-corrects"},
        {"gradient_allreduce_op", "mean", true, "gradients are averaged over the ranks"},
        {"zero_optimization.zero_hpz_partition_size", 1, true, "no hpZ secondary partition"},
        {"zero_optimization.mics_shard_size", -1, true, "no MiCS sharding"},
        {"zero_optimization.zero_quantized_weights", false, true, "no ZeRO++ quantization"},
        {"zero_optimization.zero_quantized_gradients", false, true, "no ZeRO++ quantization"},
        {"zero_optimization.zero_quantized_nontrainable_weights", false, true,
         "no ZeRO++ quantization"},
        {"zero_optimization.reduce_scatter", true, true,
         "gradients are always reduce-scattered (an all-reduce would move twice the bytes)"},
        {"fp16.fp16_master_weights_and_grads", false, true, "master weights stay fp32"},
        {"bf16.bf16_master_weights_and_grads", false, true, "master weights stay fp32"},
        {"bf16.bf16_optimizer_states", false, true, "Adam state stays fp32"},
        {"gradient_predivide_factor", 1.0, false, "the average is taken once, in fp32 sums"},
        {"prescale_gradients", false, false, "the average is taken once, in fp32 sums"},
        {"sparse_gradients", false, false, "embedding gradients are dense"},
        {"zero_optimization.sub_group_size", 1e9, false,
         "the optimizer steps each unit's shard in turn (in sub-groups of this size when the "
         "optimizer state is on nvme)"},
        {"zero_optimization.round_robin_gradients", false, false,
         "gradients are reduced unit by unit"},
        {"zero_optimization.contiguous_gradients", true, false,
         "gradients are contiguous anyway (one flat buffer per unit)"},
        {"zero_optimization.allgather_partitions", true, false,
         "parameters are shared with a ring all-gather anyway"},
        {"zero_optimization.reduce_bucket_size", 5e8, false,
         "each unit (layer) is one bucket, whatever its size"},
        {"zero_optimization.allgather_bucket_size", 5e8, false,
         "each unit (layer) is one bucket, whatever its size"},
        {"zero_optimization.stage3_gather_16bit_weights_on_model_save", false, false,
         "checkpoints hold the fp32 masters (`zerorun ckpt consolidate` writes the whole "
         "model); zerorun.torch's save_16bit_model (HF's save_model) gathers it on rank 0"},
    };
    for (const Unhonoured& k : keys) {
      const json* v = Get(k.key);
      if (v == nullptr || SameValue(*v, k.default_value)) continue;
      if (k.refuse) {
        Refuse(k.key, *v,
               absl::StrCat("remove it or set it to ", Dump(k.default_value), " (", k.why, ")"));
      } else {
        Add(kOk, k.key, *v, k.why);
      }
    }
  }

  // DeepSpeed's optimizer names are case-insensitive; Adam means AdamW unless adam_w_mode is off.
  void Optimizer() {
    const json* type = Get("optimizer.type");
    if (type == nullptr || !type->is_string()) return;
    const std::string name = absl::AsciiStrToLower(type->get<std::string>());
    if (name != "adam" && name != "adamw") {
      Refuse("optimizer.type", *type, "use \"AdamW\" (or \"Adam\"): the one optimizer here");
    } else if (name == "adam" && Get("optimizer.params.adam_w_mode") != nullptr &&
               !IsTrue("optimizer.params.adam_w_mode")) {
      Refuse("optimizer.params.adam_w_mode", false,
             "remove it: only decoupled weight decay (AdamW) is implemented");
    }
  }

  // ZeRO-Offload to "cpu": libzerorun's ranks are CPU ranks, whose optimizer state and parameters
  // are in host memory already, so the key is accepted and the same code path runs (the memory
  // report counts the state as host). "nvme" (ZeRO-Infinity): the optimizer state, and at stage 3
  // the parameter shards, in files under nvme_path.
  void Offload() {
    const int stage = Summarize(config_).stage;
    for (const char* block : {"offload_optimizer", "offload_param"}) {
      const std::string key = absl::StrCat("zero_optimization.", block, ".device");
      const json* device = Get(key);
      if (device == nullptr || !device->is_string() || device->get<std::string>() == "none") {
        continue;
      }
      const bool optimizer = std::string(block) == "offload_optimizer";
      const std::string where = device->get<std::string>();
      if (where != "cpu" && where != "nvme") {
        Refuse(key, *device, "use \"cpu\", \"nvme\" or \"none\"");
      } else if (optimizer && stage < 1) {
        Refuse(key, *device, "use ZeRO stage 1, 2 or 3 with it, or set it to \"none\"");
      } else if (!optimizer && stage != 3) {
        Add(kOk, key, *device, "ignored below ZeRO stage 3 (as DeepSpeed ignores it)");
      } else if (where == "nvme" && optimizer) {
        Add(kOk, key, *device,
            absl::StrCat(
                "Adam's m and v (and the fp32 masters with 16-bit weights) live in files under "
                "nvme_path, swapped in sub-groups with O_DIRECT io_uring (aio block) through a "
                "ring of max(3, buffer_count / arrays per sub-group) sub-group buffers read ahead "
                "into the next step (a larger buffer_count: faster steps for more RAM)",
                stage < 3 ? "; DeepSpeed allows nvme only at stage 3, zerorun at 1-3" : ""));
      } else if (where == "nvme") {
        Add(kOk, key, *device,
            "the shards of units above param_persistence_threshold live in files under "
            "nvme_path, read when gathered (prefetched up to buffer_count units and max_in_cpu "
            "elements), written after the step");
      } else {
        Add(kOk, key, *device,
            optimizer ? "this is a CPU rank: the optimizer state is in host memory already, the "
                        "same code path runs (pin_memory has no effect without a GPU)"
                      : "this is a CPU rank: the parameter shards are in host memory already");
      }
    }
  }

  void Precision() {
    const std::string working = IsTrue("fp16.enabled")                                 ? "fp16"
                                : IsTrue("bf16.enabled") || IsTrue("bfloat16.enabled") ? "bf16"
                                                                                       : "fp32";
    if (const json* accum = Get("data_types.grad_accum_dtype"); accum != nullptr) {
      const std::string name = accum->is_string() ? accum->get<std::string>() : Dump(*accum);
      if (name != "fp32" && name != working) {
        Refuse("data_types.grad_accum_dtype", *accum,
               absl::StrCat("use \"fp32\" or the working dtype \"", working, "\""));
      }
    }
    if (const json* comm = Get("communication_data_type"); comm != nullptr) {
      if (!comm->is_string() || comm->get<std::string>() != working) {
        Refuse("communication_data_type", *comm,
               absl::StrCat("remove it: gradients are reduced in the working dtype (", working,
                            ") with fp32 sums"));
      }
    }
  }

  void Monitors() {
    // csv_monitor and tensorboard are written by zerorun::TrainingMonitor (zerorun/monitor.h).
    for (const char* block : {"wandb", "comet"}) {
      const std::string key = absl::StrCat(block, ".enabled");
      if (IsTrue(key)) {
        Add(kWarn, key, true,
            "libzerorun has no client for this service and ignores the block; its step metrics go "
            "to `zerorun status` and /metrics, and csv_monitor / tensorboard files are written "
            "(remove the block, or log from the train program)");
      }
    }
  }

  void Scheduler() {
    const json* type = Get("scheduler.type");
    if (type == nullptr || !type->is_string()) return;
    const std::string name = type->get<std::string>();
    if (name != "WarmupLR" && name != "WarmupDecayLR" && name != "WarmupCosineLR") {
      Refuse("scheduler.type", *type, "use WarmupLR, WarmupDecayLR or WarmupCosineLR");
    }
  }

  const json& config_;
  std::vector<Finding> findings_;
};

}  // namespace

std::vector<Finding> RuntimeSupport(const json& effective) { return Checker(effective).Run(); }

}  // namespace zerorun::dsconfig
