// DeepSpeed config -> ZeroOptions for train_gpt; every key is honoured, refused, or noted.
#include "ds_options.h"

#include <cctype>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace zerorun::gpt {

using json = nlohmann::json;

const json* Find(const json& root, std::initializer_list<const char*> path) {
  const json* node = &root;
  for (const char* key : path) {
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
  }
  return node;
}

namespace {

std::string KeyName(std::initializer_list<const char*> path) {
  std::string key;
  for (const char* p : path) absl::StrAppend(&key, key.empty() ? "" : ".", p);
  return key;
}

absl::Status ReadBool(const json& root, std::initializer_list<const char*> path, bool* out) {
  const json* v = Find(root, path);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat("config key ", KeyName(path), " is ", v->dump(),
                                                   "; it must be true or false"));
  }
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status Refuse(std::initializer_list<const char*> path, const json& value,
                    const std::string& fix) {
  return absl::InvalidArgumentError(absl::StrCat("config key ", KeyName(path), " is ", value.dump(),
                                                 ": not supported by this runtime. Fix: ", fix));
}

// Keys whose non-default values change what DeepSpeed computes but that this runtime does not
// implement: refused. Keys that only change how (speed, rounding, checkpoint files): noted. The
// ranks get the effective config, DeepSpeed's defaults filled in, so only values that differ
// from a default count.
struct Unhonoured {
  std::initializer_list<const char*> path;
  json default_value;
  bool refuse;
  const char* why;
};

absl::Status CheckUnhonoured(const json& config, std::vector<std::string>* notes) {
  const Unhonoured keys[] = {
      {{"optimizer", "params", "amsgrad"}, false, true, "AMSGrad is not implemented"},
      {{"optimizer", "params", "bias_correction"}, true, true, "AdamW always bias-corrects"},
      {{"gradient_allreduce_op"}, "mean", true, "gradients are averaged over the ranks"},
      {{"zero_optimization", "zero_hpz_partition_size"}, 1, true, "no hpZ secondary partition"},
      {{"zero_optimization", "mics_shard_size"}, -1, true, "no MiCS sharding"},
      {{"zero_optimization", "zero_quantized_weights"}, false, true, "no ZeRO++ quantization"},
      {{"zero_optimization", "zero_quantized_gradients"}, false, true, "no ZeRO++ quantization"},
      {{"zero_optimization", "zero_quantized_nontrainable_weights"},
       false,
       true,
       "no ZeRO++ quantization"},
      {{"gradient_predivide_factor"}, 1.0, false, "the average is taken once, in fp32 sums"},
      {{"prescale_gradients"}, false, false, "the average is taken once, in fp32 sums"},
      {{"sparse_gradients"}, false, false, "embedding gradients are dense"},
      {{"zero_optimization", "sub_group_size"},
       1e9,
       false,
       "the optimizer steps each unit's shard in turn"},
      {{"zero_optimization", "round_robin_gradients"},
       false,
       false,
       "gradients are reduced unit by unit"},
      {{"zero_optimization", "stage3_gather_16bit_weights_on_model_save"},
       false,
       false,
       "no checkpoints are written yet"},
  };
  for (const Unhonoured& key : keys) {
    const json* v = Find(config, key.path);
    if (v == nullptr || v->is_null() || *v == key.default_value) continue;
    if (v->is_number() && key.default_value.is_number() &&
        v->get<double>() == key.default_value.get<double>()) {
      continue;
    }
    if (key.refuse) {
      return Refuse(
          key.path, *v,
          absl::StrCat("remove it or set it to ", key.default_value.dump(), " (", key.why, ")"));
    }
    notes->push_back(absl::StrCat(KeyName(key.path), " ", v->dump(), ": ", key.why));
  }
  // DeepSpeed's optimizer names are case-insensitive; Adam means AdamW unless adam_w_mode is off.
  if (const json* type = Find(config, {"optimizer", "type"}); type && type->is_string()) {
    std::string name = type->get<std::string>();
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (name != "adam" && name != "adamw") {
      return Refuse({"optimizer", "type"}, *type,
                    "use \"AdamW\" (or \"Adam\"): the one optimizer here");
    }
    const json* mode = Find(config, {"optimizer", "params", "adam_w_mode"});
    if (name == "adam" && mode && mode->is_boolean() && !mode->get<bool>()) {
      return Refuse({"optimizer", "params", "adam_w_mode"}, *mode,
                    "remove it: only decoupled weight decay (AdamW) is implemented");
    }
  }
  return absl::OkStatus();
}

}  // namespace

template <typename T>
absl::Status ReadNumber(const json& root, std::initializer_list<const char*> path, T* out) {
  const json* v = Find(root, path);
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("config key ", KeyName(path), " is ", v->dump(),
                                                   "; train_gpt needs a number (resolve \"auto\" "
                                                   "with zerorun's flags)"));
  }
  *out = v->get<T>();
  return absl::OkStatus();
}
template absl::Status ReadNumber(const json&, std::initializer_list<const char*>, int*);
template absl::Status ReadNumber(const json&, std::initializer_list<const char*>, float*);
template absl::Status ReadNumber(const json&, std::initializer_list<const char*>, double*);
template absl::Status ReadNumber(const json&, std::initializer_list<const char*>, int64_t*);

absl::StatusOr<DsOptions> ReadDsOptions(const json& config) {
  DsOptions ds;
  ZeroOptions& o = ds.zero;
  o.gradient_clipping = 1.0f;  // DeepSpeed 0.19.6's default.
  double prefetch = 5e7, persistence = 1e5, max_live = 1e9, reuse = 1e9;
  for (absl::Status s :
       {ReadNumber(config, {"zero_optimization", "stage"}, &o.stage),
        ReadNumber(config, {"train_micro_batch_size_per_gpu"}, &ds.micro_batch),
        ReadNumber(config, {"gradient_accumulation_steps"}, &o.gradient_accumulation_steps),
        ReadNumber(config, {"gradient_clipping"}, &o.gradient_clipping),
        ReadNumber(config, {"optimizer", "params", "lr"}, &o.adam.lr),
        ReadNumber(config, {"optimizer", "params", "eps"}, &o.adam.eps),
        ReadNumber(config, {"optimizer", "params", "weight_decay"}, &o.adam.weight_decay),
        ReadNumber(config, {"zero_optimization", "stage3_prefetch_bucket_size"}, &prefetch),
        ReadNumber(config, {"zero_optimization", "stage3_param_persistence_threshold"},
                   &persistence),
        ReadNumber(config, {"zero_optimization", "stage3_max_live_parameters"}, &max_live),
        ReadNumber(config, {"zero_optimization", "stage3_max_reuse_distance"}, &reuse)}) {
    if (!s.ok()) return s;
  }
  if (const json* betas = Find(config, {"optimizer", "params", "betas"});
      betas && betas->is_array() && betas->size() == 2) {
    o.adam.beta1 = (*betas)[0].get<float>();
    o.adam.beta2 = (*betas)[1].get<float>();
  }
  if (o.stage < 0 || o.stage > 3) {
    return Refuse({"zero_optimization", "stage"}, o.stage, "use 0, 1, 2 or 3");
  }
  o.prefetch_bucket_size = static_cast<size_t>(prefetch);
  o.param_persistence_threshold = static_cast<size_t>(persistence);
  o.max_live_parameters = static_cast<size_t>(max_live);
  o.max_reuse_distance = static_cast<size_t>(reuse);
  o.overlap_comm = o.stage == 3;  // DeepSpeed's default.
  if (absl::Status s = ReadBool(config, {"zero_optimization", "overlap_comm"}, &o.overlap_comm);
      !s.ok()) {
    return s;
  }
  // The GPT's backward finishes one unit before it starts the next: one gradient slot suffices,
  // and a second lets the next unit's backward run while the last one is reduced.
  o.grad_slots = o.overlap_comm ? 2 : 1;
  for (const char* block : {"offload_optimizer", "offload_param"}) {
    const json* device = Find(config, {"zero_optimization", block, "device"});
    if (device && device->is_string() && device->get<std::string>() != "none") {
      return Refuse({"zero_optimization", block, "device"}, *device,
                    "set it to \"none\" (ZeRO-Offload is not built yet)");
    }
  }
  bool reduce_scatter = true, contiguous = true, allgather_partitions = true;
  for (absl::Status s :
       {ReadBool(config, {"zero_optimization", "reduce_scatter"}, &reduce_scatter),
        ReadBool(config, {"zero_optimization", "contiguous_gradients"}, &contiguous),
        ReadBool(config, {"zero_optimization", "allgather_partitions"}, &allgather_partitions)}) {
    if (!s.ok()) return s;
  }
  if (!reduce_scatter && o.stage > 0) {
    return Refuse({"zero_optimization", "reduce_scatter"}, false,
                  "remove it or set it true: gradients are always reduce-scattered (an "
                  "all-reduce would move twice the bytes)");
  }
  if (!contiguous) {
    ds.notes.push_back(
        "zero_optimization.contiguous_gradients false: gradients are contiguous anyway (one "
        "flat buffer per unit)");
  }
  if (!allgather_partitions) {
    ds.notes.push_back(
        "zero_optimization.allgather_partitions false: parameters are shared with a ring "
        "all-gather anyway");
  }
  for (const char* key : {"reduce_bucket_size", "allgather_bucket_size"}) {
    // zerorun hands ranks the effective config, DeepSpeed's default (5e8) filled in: note only
    // a value the user chose.
    double bucket = 5e8;
    if (absl::Status s = ReadNumber(config, {"zero_optimization", key}, &bucket); !s.ok()) return s;
    if (bucket != 5e8) {
      ds.notes.push_back(absl::StrCat("zero_optimization.", key, " ", bucket,
                                      ": each unit (layer) is one bucket, whatever its size"));
    }
  }
  // Precision.
  bool fp16 = false, bf16 = false;
  for (absl::Status s :
       {ReadBool(config, {"fp16", "enabled"}, &fp16), ReadBool(config, {"bf16", "enabled"}, &bf16),
        ReadBool(config, {"bfloat16", "enabled"}, &bf16)}) {
    if (!s.ok()) return s;
  }
  if (fp16 && bf16) {
    return absl::InvalidArgumentError(
        "fp16.enabled and bf16.enabled are both true: bfloat16 and fp16 modes cannot be "
        "simultaneously enabled (DeepSpeed's rule). Fix: enable one");
  }
  o.dtype = fp16 ? DType::kFp16 : bf16 ? DType::kBf16 : DType::kFp32;
  if (fp16) {
    LossScaleOptions& ls = o.loss_scale;
    double window = 1000;
    for (absl::Status s :
         {ReadNumber(config, {"fp16", "loss_scale"}, &ls.loss_scale),
          ReadNumber(config, {"fp16", "initial_scale_power"}, &ls.initial_scale_power),
          ReadNumber(config, {"fp16", "loss_scale_window"}, &window),
          ReadNumber(config, {"fp16", "hysteresis"}, &ls.hysteresis),
          ReadNumber(config, {"fp16", "min_loss_scale"}, &ls.min_scale),
          ReadBool(config, {"fp16", "consecutive_hysteresis"}, &ls.consecutive_hysteresis)}) {
      if (!s.ok()) return s;
    }
    ls.window = static_cast<int64_t>(window);
    if (ls.loss_scale < 0) {
      return Refuse({"fp16", "loss_scale"}, ls.loss_scale, "use 0 (dynamic) or a positive scale");
    }
    if (ls.loss_scale == 0 && (ls.window < 1 || ls.min_scale <= 0)) {
      return absl::InvalidArgumentError(
          "fp16 dynamic loss scaling needs loss_scale_window >= 1 and min_loss_scale > 0");
    }
  }
  for (auto path : {std::initializer_list<const char*>{"fp16", "fp16_master_weights_and_grads"},
                    {"bf16", "bf16_master_weights_and_grads"},
                    {"bf16", "bf16_optimizer_states"}}) {
    bool on = false;
    if (absl::Status s = ReadBool(config, path, &on); !s.ok()) return s;
    if (on) return Refuse(path, true, "remove it: master weights and Adam state stay fp32");
  }
  if (const json* accum = Find(config, {"data_types", "grad_accum_dtype"});
      accum && !accum->is_null()) {
    const std::string name = accum->is_string() ? accum->get<std::string>() : accum->dump();
    if (name == "fp32") {
      o.grad_accum_fp32 = o.dtype != DType::kFp32;
    } else if (name != DTypeName(o.dtype)) {
      return Refuse({"data_types", "grad_accum_dtype"}, *accum,
                    absl::StrCat("use \"fp32\" or the working dtype \"", DTypeName(o.dtype), "\""));
    }
  }
  if (const json* comm = Find(config, {"communication_data_type"}); comm && !comm->is_null()) {
    if (!comm->is_string() || comm->get<std::string>() != DTypeName(o.dtype)) {
      return Refuse({"communication_data_type"}, *comm,
                    absl::StrCat("remove it: gradients are reduced in the working dtype (",
                                 DTypeName(o.dtype), ") with fp32 sums"));
    }
  }
  if (absl::Status s = CheckUnhonoured(config, &ds.notes); !s.ok()) return s;
  return ds;
}

}  // namespace zerorun::gpt
