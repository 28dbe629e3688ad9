// The effective DeepSpeed config -> EngineConfig (zerorun/engine_config.h); every key is
// honoured, refused, or noted. Part of libzerorun (it fills ZeroOptions), beside the dsconfig
// code whose output it reads.
#include "zerorun/engine_config.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "dsconfig/config_json.h"
#include "dsconfig/effective.h"
#include "dsconfig/runtime_support.h"

namespace zerorun {
namespace {

using json = nlohmann::json;

// The node at `path`, or null.
const json* Find(const json& root, std::initializer_list<const char*> path) {
  const json* node = &root;
  for (const char* key : path) {
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
  }
  return node;
}

std::string KeyName(std::initializer_list<const char*> path) {
  std::string key;
  for (const char* p : path) absl::StrAppend(&key, key.empty() ? "" : ".", p);
  return key;
}

// Reads a number at `path` into *out when present; InvalidArgument naming the key otherwise.
template <typename T>
absl::Status ReadNumber(const json& root, std::initializer_list<const char*> path, T* out) {
  const json* v = Find(root, path);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("config key ", KeyName(path), " is ",
                                                   dsconfig::Dump(*v),
                                                   "; the engine needs a number (resolve \"auto\" "
                                                   "with zerorun's flags)"));
  }
  *out = v->get<T>();
  return absl::OkStatus();
}

// A number the effective config always holds (DeepSpeed's default filled in by dsconfig).
template <typename T>
absl::Status Require(const json& root, std::initializer_list<const char*> path, T* out) {
  if (Find(root, path) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "effective config key ", KeyName(path),
        " is missing (launch with zerorun, or resolve the file with ResolveEffectiveConfig)"));
  }
  return ReadNumber(root, path, out);
}

// DeepSpeed's scheduler block into *lr (base_lr already set: the optimizer's lr).
absl::Status ReadSchedule(const json& config, LrSchedule* lr) {
  const json* type = Find(config, {"scheduler", "type"});
  if (type == nullptr || !type->is_string()) return absl::OkStatus();
  const std::string name = type->get<std::string>();
  using Kind = LrSchedule::Kind;
  if (name == "WarmupLR") {
    lr->kind = Kind::kWarmupLR;
  } else if (name == "WarmupDecayLR") {
    lr->kind = Kind::kWarmupDecayLR;
  } else if (name == "WarmupCosineLR") {
    lr->kind = Kind::kWarmupCosineLR;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler.type ", dsconfig::Dump(*type),
                     " is not supported (WarmupLR, WarmupDecayLR and WarmupCosineLR are)"));
  }
  for (absl::Status s :
       {ReadNumber(config, {"scheduler", "params", "warmup_max_lr"}, &lr->warmup_max_lr),
        ReadNumber(config, {"scheduler", "params", "warmup_min_lr"}, &lr->warmup_min_lr),
        ReadNumber(config, {"scheduler", "params", "warmup_num_steps"}, &lr->warmup_num_steps),
        ReadNumber(config, {"scheduler", "params", "total_num_steps"}, &lr->total_num_steps),
        ReadNumber(config, {"scheduler", "params", "warmup_min_ratio"}, &lr->warmup_min_ratio),
        ReadNumber(config, {"scheduler", "params", "cos_min_ratio"}, &lr->cos_min_ratio)}) {
    if (!s.ok()) return s;
  }
  if (lr->kind != Kind::kWarmupLR && lr->total_num_steps <= lr->warmup_num_steps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler ", name, " needs params.total_num_steps greater than warmup_num_steps (",
        lr->warmup_num_steps, ")"));
  }
  const json* kind = Find(config, {"scheduler", "params", "warmup_type"});
  lr->log_warmup = !(kind && kind->is_string() && kind->get<std::string>() == "linear");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EngineConfig> ReadEngineConfig(const json& config) {
  absl::StatusOr<dsconfig::TrainingConfig> typed = dsconfig::ReadTrainingConfig(config);
  if (!typed.ok()) return typed.status();
  EngineConfig ds;
  for (const dsconfig::Finding& f : dsconfig::RuntimeSupport(config)) {
    if (f.status == dsconfig::kCritical) {
      return absl::InvalidArgumentError(absl::StrCat("config key ", f.detail));
    }
    ds.notes.push_back(f.detail);
  }
  ZeroOptions& o = ds.zero;
  ds.micro_batch = static_cast<int>(typed->batch.micro_batch_per_gpu);
  o.gradient_accumulation_steps = static_cast<int>(typed->batch.gradient_accumulation_steps);
  o.stage = typed->stage;
  o.gradient_clipping = static_cast<float>(typed->gradient_clipping);
  o.overlap_comm = typed->overlap_comm;
  if (o.stage < 0 || o.stage > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("config key zero_optimization.stage is ", o.stage, ". Fix: use 0, 1, 2 or 3"));
  }
  if (typed->fp16 && typed->bf16) {
    return absl::InvalidArgumentError(
        "fp16.enabled and bf16.enabled are both true: bfloat16 and fp16 modes cannot be "
        "simultaneously enabled (DeepSpeed's rule). Fix: enable one");
  }
  // The optimizer block has no DeepSpeed default (the client's optimizer): AdamOptions' values
  // stand when it is absent, and dsconfig fills Adam's defaults when it is present.
  for (absl::Status s :
       {ReadNumber(config, {"optimizer", "params", "lr"}, &o.adam.lr),
        ReadNumber(config, {"optimizer", "params", "eps"}, &o.adam.eps),
        ReadNumber(config, {"optimizer", "params", "weight_decay"}, &o.adam.weight_decay)}) {
    if (!s.ok()) return s;
  }
  if (const json* betas = Find(config, {"optimizer", "params", "betas"});
      betas && betas->is_array() && betas->size() == 2 && (*betas)[0].is_number() &&
      (*betas)[1].is_number()) {
    o.adam.beta1 = (*betas)[0].get<float>();
    o.adam.beta2 = (*betas)[1].get<float>();
  }
  double prefetch = 0, persistence = 0, max_live = 0, reuse = 0;
  for (absl::Status s :
       {Require(config, {"zero_optimization", "stage3_prefetch_bucket_size"}, &prefetch),
        Require(config, {"zero_optimization", "stage3_param_persistence_threshold"}, &persistence),
        Require(config, {"zero_optimization", "stage3_max_live_parameters"}, &max_live),
        Require(config, {"zero_optimization", "stage3_max_reuse_distance"}, &reuse)}) {
    if (!s.ok()) return s;
  }
  o.prefetch_bucket_size = static_cast<size_t>(prefetch);
  o.param_persistence_threshold = static_cast<size_t>(persistence);
  o.max_live_parameters = static_cast<size_t>(max_live);
  o.max_reuse_distance = static_cast<size_t>(reuse);
  // The GPT's backward finishes one unit before it starts the next: one gradient slot suffices,
  // and a second lets the next unit's backward run while the last one is reduced.
  o.grad_slots = o.overlap_comm ? 2 : 1;
  o.dtype = typed->fp16 ? DType::kFp16 : typed->bf16 ? DType::kBf16 : DType::kFp32;
  if (typed->fp16) {
    LossScaleOptions& ls = o.loss_scale;
    double window = 0;
    for (absl::Status s :
         {Require(config, {"fp16", "loss_scale"}, &ls.loss_scale),
          Require(config, {"fp16", "initial_scale_power"}, &ls.initial_scale_power),
          Require(config, {"fp16", "loss_scale_window"}, &window),
          Require(config, {"fp16", "hysteresis"}, &ls.hysteresis),
          Require(config, {"fp16", "min_loss_scale"}, &ls.min_scale)}) {
      if (!s.ok()) return s;
    }
    if (const json* c = Find(config, {"fp16", "consecutive_hysteresis"}); c && c->is_boolean()) {
      ls.consecutive_hysteresis = c->get<bool>();
    }
    ls.window = static_cast<int64_t>(window);
    if (ls.loss_scale < 0) {
      return absl::InvalidArgumentError(absl::StrCat("config key fp16.loss_scale is ",
                                                     ls.loss_scale,
                                                     ". Fix: use 0 (dynamic) or a positive scale"));
    }
    if (ls.loss_scale == 0 && (ls.window < 1 || ls.min_scale <= 0)) {
      return absl::InvalidArgumentError(
          "fp16 dynamic loss scaling needs loss_scale_window >= 1 and min_loss_scale > 0");
    }
  }
  // ZeRO-Offload: RuntimeSupport refused what is not allowed at this stage.
  auto space = [&](const char* block) {
    const json* device = Find(config, {"zero_optimization", block, "device"});
    const std::string where = device && device->is_string() ? device->get<std::string>() : "";
    return where == "cpu"    ? MemorySpace::kHost
           : where == "nvme" ? MemorySpace::kNvme
                             : MemorySpace::kDevice;
  };
  o.optimizer_space = space("offload_optimizer");
  o.param_space = o.stage == 3 ? space("offload_param") : MemorySpace::kDevice;
  if (absl::Status s = ReadNumber(config, {"zero_optimization", "offload_optimizer", "ratio"},
                                  &o.optimizer_ratio);
      !s.ok()) {
    return s;
  }
  if (const json* pin = Find(config, {"zero_optimization", "offload_optimizer", "pin_memory"});
      pin && pin->is_boolean()) {
    o.pin_memory = pin->get<bool>();
  }
  // nvme: each block names its own directory (DeepSpeed's keys); the aio block serves both.
  auto nvme_path = [&](const char* block, std::string* out) -> absl::Status {
    const json* path = Find(config, {"zero_optimization", block, "nvme_path"});
    if (path == nullptr || !path->is_string() || path->get<std::string>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config key zero_optimization.", block,
          ".nvme_path is missing: device \"nvme\" needs the directory its files go in"));
    }
    *out = path->get<std::string>();
    return absl::OkStatus();
  };
  if (o.optimizer_space == MemorySpace::kNvme) {
    if (absl::Status s = nvme_path("offload_optimizer", &o.nvme_path); !s.ok()) return s;
    double count = 0;
    if (absl::Status s =
            ReadNumber(config, {"zero_optimization", "offload_optimizer", "buffer_count"}, &count);
        !s.ok()) {
      return s;
    }
    if (count >= 1) o.optimizer_buffer_count = static_cast<size_t>(count);
  }
  if (o.param_space == MemorySpace::kNvme) {
    if (absl::Status s = nvme_path("offload_param", &o.param_nvme_path); !s.ok()) return s;
    double count = 0, size = 0, in_cpu = -1;
    for (absl::Status s :
         {ReadNumber(config, {"zero_optimization", "offload_param", "buffer_count"}, &count),
          ReadNumber(config, {"zero_optimization", "offload_param", "buffer_size"}, &size),
          ReadNumber(config, {"zero_optimization", "offload_param", "max_in_cpu"}, &in_cpu)}) {
      if (!s.ok()) return s;
    }
    if (count >= 1) o.param_buffer_count = static_cast<size_t>(count);
    if (size >= 1) o.param_buffer_size = static_cast<size_t>(size);
    if (in_cpu >= 0) o.max_in_cpu = static_cast<size_t>(in_cpu);
  }
  if (o.optimizer_space == MemorySpace::kNvme || o.param_space == MemorySpace::kNvme) {
    double block = 0, depth = 0, threads = 1, sub_group = 0;
    for (absl::Status s :
         {ReadNumber(config, {"aio", "block_size"}, &block),
          ReadNumber(config, {"aio", "queue_depth"}, &depth),
          ReadNumber(config, {"aio", "intra_op_parallelism"}, &threads),
          ReadNumber(config, {"zero_optimization", "sub_group_size"}, &sub_group)}) {
      if (!s.ok()) return s;
    }
    if (block > 0) o.aio.block_size = static_cast<size_t>(block);
    if (depth > 0) o.aio.queue_depth = static_cast<int>(depth);
    o.aio.thread_count = static_cast<int>(threads);
    if (sub_group >= 1) o.sub_group_size = static_cast<size_t>(sub_group);
    for (const char* flag : {"single_submit", "overlap_events"}) {
      if (const json* f = Find(config, {"aio", flag}); f && f->is_boolean()) {
        (std::string(flag) == "single_submit" ? o.aio.single_submit : o.aio.overlap_events) =
            f->get<bool>();
      }
    }
  }
  // RuntimeSupport refused every other accumulation dtype.
  if (const json* accum = Find(config, {"data_types", "grad_accum_dtype"});
      accum && accum->is_string() && accum->get<std::string>() == "fp32") {
    o.grad_accum_fp32 = o.dtype != DType::kFp32;
  }
  ds.lr.base_lr = o.adam.lr;
  if (absl::Status s = ReadSchedule(config, &ds.lr); !s.ok()) return s;
  return ds;
}

}  // namespace zerorun
