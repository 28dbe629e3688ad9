// DeepSpeed config checks: vocabulary walk, type checks, and cross-key rules (reference 10-13, 20).
#include "dsconfig/ds_config.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dsconfig/config_json.h"
#include "dsconfig/config_schema.h"
#include "dsconfig/suggest.h"

namespace zerorun::dsconfig {
namespace {

// A ZeRO stage value: 0-3, or -1 for anything else (negative, fractional, or too large for an
// int: a number like 4e97 must not be converted, that is undefined behaviour).
int StageOf(const nlohmann::json& value) {
  if (!value.is_number()) return -1;
  const double v = value.get<double>();
  return v >= 0 && v <= 3 && v == static_cast<double>(static_cast<int>(v)) ? static_cast<int>(v)
                                                                           : -1;
}

using json = nlohmann::json;

bool IsAuto(const json& v) { return v.is_string() && v.get<std::string>() == "auto"; }

std::string Parent(const std::string& path) {
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

constexpr int kMaxUnknownRows = 20;

class Validator {
 public:
  explicit Validator(const JsonDocument& doc) : doc_(doc) {}

  std::vector<Finding> Run() {
    Walk(doc_.root, "");
    if (unknown_ > kMaxUnknownRows) {
      const bool critical = unknown_critical_ > 0;
      findings_.push_back(
          Finding{"config", critical ? kCritical : kWarn,
                  absl::StrCat(doc_.path, ": ", unknown_ - kMaxUnknownRows,
                               " more unknown keys not listed (", unknown_, " in all",
                               critical ? ", some in blocks DeepSpeed checks strictly" : "",
                               "). Fix: check that this is a DeepSpeed config"),
                  critical ? kExitDataErr : kExitOk});
    }
    CrossChecks();
    Clipping();
    return std::move(findings_);
  }

 private:
  void Add(Severity status, int exit_code, const std::string& key, const std::string& text) {
    findings_.push_back(Finding{
        "config", status,
        absl::StrCat(doc_.Where(key), ": ", key.empty() ? "" : key, key.empty() ? "" : ": ", text),
        status == kCritical ? exit_code : kExitOk});
  }

  void Walk(const json& object, const std::string& block) {
    for (auto it = object.begin(); it != object.end(); ++it) {
      const std::string path = block.empty() ? it.key() : absl::StrCat(block, ".", it.key());
      const json& value = it.value();
      const KeySpec* spec = FindKey(path);
      if (spec == nullptr) {
        Unknown(path, block, it.key());
        continue;
      }
      if (IsAuto(value)) continue;  // Resolved or reported by auto_values.
      CheckType(*spec, path, value);
      if (spec->kind == ValueKind::kBlock && value.is_object()) Walk(value, path);
    }
  }

  // The first kMaxUnknownRows unknown keys get a row each (with a did-you-mean); the rest are
  // counted into one row, so a file of a million stray keys stays one screen and linear time.
  void Unknown(const std::string& path, const std::string& block, const std::string& key) {
    if (IsStrictBlock(block)) ++unknown_critical_;
    if (++unknown_ > kMaxUnknownRows) return;
    const std::string hint = DidYouMean(key, ChildKeys(block));
    if (block == "zero_optimization" && key == "aio") {
      Add(kCritical, kExitDataErr, path,
          "'aio' is a top-level block, not a zero_optimization key; DeepSpeed rejects it here "
          "(pydantic extra=forbid). Fix: move \"aio\": {...} to the top level");
    } else if (block == "aio" && key == "thread_count") {
      Add(kWarn, kExitOk, path,
          "ignored silently since DeepSpeed 0.16.4 (renamed intra_op_parallelism). Fix: rename "
          "it to \"intra_op_parallelism\"");
    } else if (IsStrictBlock(block)) {
      Add(kCritical, kExitDataErr, path,
          absl::StrCat("unknown key '", key, "' in '", block, "'", hint,
                       "; DeepSpeed rejects unknown keys in this block. ",
                       hint.empty()
                           ? absl::StrCat("Known keys: ", absl::StrJoin(ChildKeys(block), ", "))
                           : "Fix: correct the spelling"));
    } else if (block.empty()) {
      Add(kWarn, kExitOk, path,
          absl::StrCat("unknown top-level key '", key, "'", hint,
                       " is dropped silently by DeepSpeed. Fix: correct or remove it"));
    } else {
      Add(kWarn, kExitOk, path,
          absl::StrCat("unknown key '", key, "' in '", block, "'", hint,
                       " is ignored silently by DeepSpeed"));
    }
  }

  void CheckType(const KeySpec& spec, const std::string& path, const json& value) {
    if (value.is_null() && std::string(spec.default_json) == "null") return;
    const char* expected = nullptr;
    switch (spec.kind) {
      case ValueKind::kBool:
        if (!value.is_boolean()) expected = "true or false";
        break;
      case ValueKind::kInt:
        if (!value.is_number()) {
          expected = "an integer";
        } else if (value.is_number_float() &&
                   std::floor(value.get<double>()) != value.get<double>()) {
          Add(kCritical, kExitDataErr, path,
              absl::StrCat("fractional value ", Dump(value),
                           " in an integer field; DeepSpeed >= 0.15 (pydantic v2) rejects it. "
                           "Fix: write an integer, e.g. ",
                           static_cast<long long>(std::llround(value.get<double>()))));
        }
        break;
      case ValueKind::kFloat:
        if (!value.is_number()) expected = "a number";
        break;
      case ValueKind::kString:
        if (!value.is_string()) expected = "a string";
        break;
      case ValueKind::kBlock:
        if (path == "zero_optimization" && value.is_boolean()) {
          Add(kWarn, kExitOk, path,
              "the legacy form \"zero_optimization\": true means stage 1 (deprecated). Fix: "
              "write \"zero_optimization\": {\"stage\": 1}");
        } else if (!value.is_object()) {
          expected = "an object {...}";
        }
        break;
      case ValueKind::kAny:
        break;
    }
    if (expected != nullptr) {
      Add(kCritical, kExitDataErr, path,
          absl::StrCat("expected ", expected, ", found ", Dump(value)));
    }
  }

  const json* Get(const std::string& path) const { return Lookup(doc_.root, path); }

  bool GetBool(const std::string& path) const {
    const json* v = Get(path);
    return v != nullptr && v->is_boolean() && v->get<bool>();
  }

  std::string GetString(const std::string& path, const std::string& fallback) const {
    const json* v = Get(path);
    return v != nullptr && v->is_string() ? v->get<std::string>() : fallback;
  }

  // A loss that spikes and diverges to NaN because nothing clips is a common failure; the same
  // file without the key means 1.0 to DeepSpeed >= 0.19.3 and "no clipping" to older releases.
  void Clipping() {
    const json* clip = Get("gradient_clipping");
    if (clip == nullptr) {
      Add(kWarn, kExitOk, "gradient_clipping",
          "not set: DeepSpeed >= 0.19.3 (and zerorun) clip the global norm at 1.0, older "
          "releases (still pinned by many HF/Axolotl stacks) do not clip at all, so this file "
          "trains differently by version. Fix: write \"gradient_clipping\": 1.0");
    } else if (clip->is_number() && clip->get<double>() == 0) {
      Add(kWarn, kExitOk, "gradient_clipping",
          "0 turns clipping off: a loss spike can then diverge to NaN. Fix: \"gradient_clipping\""
          ": 1.0 (DeepSpeed's default since 0.19.3) unless you mean it");
    }
  }

  void CrossChecks() {
    const json* stage_value = Get("zero_optimization.stage");
    int stage = 0;
    if (stage_value != nullptr && stage_value->is_number()) {
      stage = StageOf(*stage_value);
      if (stage < 0) {
        Add(kCritical, kExitDataErr, "zero_optimization.stage",
            absl::StrCat("stage ", stage_value->dump(), " does not exist. Fix: use 0, 1, 2 or 3"));
        stage = 0;
      }
    } else if (const json* zero = Get("zero_optimization"); zero && zero->is_boolean()) {
      stage = zero->get<bool>() ? 1 : 0;
    }
    OffloadChecks(stage);
    if (GetBool("fp16.enabled") && (GetBool("bf16.enabled") || GetBool("bfloat16.enabled"))) {
      Add(kCritical, kExitConfig, "bf16.enabled",
          "bfloat16 and fp16 modes cannot be simultaneously enabled. Fix: keep one of "
          "fp16.enabled / bf16.enabled true");
    }
    for (const char* old_key : {"cpu_offload", "cpu_offload_param"}) {
      const std::string path = absl::StrCat("zero_optimization.", old_key);
      if (Get(path) == nullptr) continue;
      const std::string replacement =
          std::string(old_key) == "cpu_offload" ? "offload_optimizer" : "offload_param";
      if (Get(absl::StrCat("zero_optimization.", replacement)) != nullptr) {
        Add(kCritical, kExitConfig, path,
            absl::StrCat("Cannot provide deprecated parameter '", old_key,
                         "' and replacing parameter '", replacement, "' together"));
      } else {
        Add(kWarn, kExitOk, path,
            absl::StrCat("deprecated. Fix: use \"", replacement, "\": {\"device\": \"cpu\"}"));
      }
    }
    OptimizerChecks(stage);
    if (const json* op = Get("gradient_allreduce_op"); op && op->is_string()) {
      const std::string v = op->get<std::string>();
      if (v != "mean" && v != "sum") {
        Add(kCritical, kExitDataErr, "gradient_allreduce_op",
            absl::StrCat("'", v, "' is not one of mean, sum"));
      } else if (v == "sum" && stage == 3) {
        Add(kCritical, kExitConfig, "gradient_allreduce_op",
            "'sum' is invalid with ZeRO stage 3. Fix: use \"mean\"");
      }
    }
    if (const json* dt = Get("communication_data_type"); dt && dt->is_string() && !IsAuto(*dt)) {
      const std::string v = dt->get<std::string>();
      if (v != "fp16" && v != "bf16" && v != "fp32") {
        Add(kCritical, kExitDataErr, "communication_data_type",
            absl::StrCat("'", v, "' is not one of fp16, bf16, fp32"));
      }
    }
    if (const json* tv = Get("checkpoint.tag_validation"); tv && tv->is_string()) {
      const std::string v = absl::AsciiStrToLower(tv->get<std::string>());
      if (v != "warn" && v != "ignore" && v != "fail") {
        Add(kCritical, kExitDataErr, "checkpoint.tag_validation",
            absl::StrCat(Dump(*tv), " is not one of Warn, Ignore, Fail"));
      }
    }
    if (const json* vs = Get("vocabulary_size");
        vs && vs->is_number_integer() && vs->get<long long>() % 8 != 0) {
      Add(kWarn, kExitOk, "vocabulary_size",
          absl::StrCat(vs->get<long long>(),
                       " is not a multiple of 8 (DeepSpeed warns: tensor cores prefer it)"));
    }
  }

  void OffloadChecks(int stage) {
    for (const char* kind : {"offload_param", "offload_optimizer"}) {
      const std::string block = absl::StrCat("zero_optimization.", kind);
      const json* b = Get(block);
      if (b == nullptr || !b->is_object()) continue;
      const std::string device = GetString(block + ".device", "none");
      if (device != "none" && device != "cpu" && device != "nvme" && device != "auto") {
        Add(kCritical, kExitDataErr, block + ".device",
            absl::StrCat("'", device, "' is not one of none, cpu, nvme"));
        continue;
      }
      const bool is_param = std::string(kind) == "offload_param";
      if (is_param && device != "none" && stage < 3) {
        Add(kWarn, kExitOk, block,
            absl::StrCat("offload_param is ignored silently below stage 3 (stage is ", stage,
                         "): parameters stay on the GPU. Fix: use stage 3 or remove it"));
      }
      if (!is_param && device == "nvme" && stage < 3) {
        Add(kWarn, kExitOk, block + ".device",
            absl::StrCat("nvme optimizer offload below stage 3 (stage is ", stage,
                         ") behaves as CPU offload in DeepSpeed, nvme_path ignored silently "
                         "(programs linking libzerorun do put the state on nvme). Fix: use "
                         "stage 3, or \"device\": \"cpu\""));
      }
      const json* path = Get(block + ".nvme_path");
      if (device == "nvme" && (path == nullptr || path->is_null()) && !(!is_param && stage < 3)) {
        Add(kCritical, kExitConfig, block + ".nvme_path",
            "\"nvme_path\" in DeepSpeed Config cannot be None if remote device is nvme. Fix: "
            "set nvme_path to a directory on a local NVMe filesystem");
      }
      const json* ratio = Get(block + ".ratio");
      if (!is_param && ratio && ratio->is_number()) {
        const double r = ratio->get<double>();
        if (r < 0 || r > 1) {
          Add(kCritical, kExitDataErr, block + ".ratio", absl::StrCat(r, " is outside [0, 1]"));
        } else if (r < 1 && stage < 3) {
          Add(kCritical, kExitConfig, block + ".ratio",
              "Partial offloading only supported for ZeRO Stage 3. Fix: use stage 3 or ratio 1");
        }
      }
    }
  }

  void OptimizerChecks(int stage) {
    if (const json* params = Get("optimizer.params");
        params && params->is_object() && params->contains("max_grad_norm")) {
      Add(kCritical, kExitDataErr, "optimizer.params.max_grad_norm",
          "'max_grad_norm' is not supported as an optimizer parameter, please switch to using "
          "the deepspeed parameter 'gradient_clipping'. Fix: move the value to top-level "
          "\"gradient_clipping\"");
    }
    const json* type = Get("optimizer.type");
    if (type == nullptr || !type->is_string() || IsAuto(*type)) return;
    const std::string name = type->get<std::string>();
    const std::string lower = absl::AsciiStrToLower(name);
    static const char* const kDeepSpeed[] = {"adam",        "adamw",      "lamb",    "onebitadam",
                                             "zerooneadam", "onebitlamb", "adagrad", "lion",
                                             "muadam",      "muadamw",    "musgd",   "muon"};
    const bool known =
        std::find(std::begin(kDeepSpeed), std::end(kDeepSpeed), lower) != std::end(kDeepSpeed);
    if ((lower == "onebitadam" || lower == "zerooneadam" || lower == "onebitlamb") && stage > 0) {
      Add(kCritical, kExitConfig, "optimizer.type",
          absl::StrCat(name, " is not compatible with ZeRO (stage ", stage, "). Fix: use Adam"));
    } else if (!known) {
      std::vector<std::string> names(std::begin(kDeepSpeed), std::end(kDeepSpeed));
      if (stage > 0 && !GetBool("zero_allow_untested_optimizer")) {
        Add(kCritical, kExitConfig, "optimizer.type",
            absl::StrCat("'", name, "' is not a DeepSpeed optimizer", DidYouMean(name, names),
                         "; with ZeRO DeepSpeed requires \"zero_allow_untested_optimizer\": "
                         "true for torch.optim classes"));
      } else {
        Add(kWarn, kExitOk, "optimizer.type",
            absl::StrCat("'", name, "' is not a DeepSpeed optimizer", DidYouMean(name, names),
                         "; DeepSpeed looks it up in torch.optim (case-sensitive)"));
      }
    }
    if (const json* sched = Get("scheduler.type"); sched && sched->is_string()) {
      static const std::vector<std::string> kSchedulers = {
          "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"};
      const std::string s = sched->get<std::string>();
      if (s != "auto" &&
          std::find(kSchedulers.begin(), kSchedulers.end(), s) == kSchedulers.end()) {
        Add(kWarn, kExitOk, "scheduler.type",
            absl::StrCat("'", s, "' is not a DeepSpeed scheduler", DidYouMean(s, kSchedulers),
                         "; DeepSpeed looks it up in torch.optim.lr_scheduler"));
      }
    }
  }

  int unknown_ = 0;
  int unknown_critical_ = 0;
  const JsonDocument& doc_;
  std::vector<Finding> findings_;
};

}  // namespace

namespace {

// Shared by the const and mutable Lookup: J is json or const json.
template <typename J>
J* LookupIn(J& root, const std::string& path) {
  J* node = &root;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(std::string(part));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

}  // namespace

const json* Lookup(const json& root, const std::string& path) { return LookupIn(root, path); }
json* Lookup(json& root, const std::string& path) { return LookupIn(root, path); }

std::vector<Finding> ValidateConfig(const JsonDocument& doc) { return Validator(doc).Run(); }

ConfigSummary Summarize(const json& config) {
  ConfigSummary s;
  auto get = [&](const std::string& path) { return Lookup(config, path); };
  if (const json* stage = get("zero_optimization.stage"); stage && stage->is_number()) {
    s.stage = std::max(0, StageOf(*stage));
  } else if (const json* zero = get("zero_optimization"); zero && zero->is_boolean()) {
    s.stage = zero->get<bool>() ? 1 : 0;
  }
  auto on = [&](const std::string& path) {
    const json* v = get(path);
    return v != nullptr && v->is_boolean() && v->get<bool>();
  };
  s.fp16 = on("fp16.enabled");
  s.bf16 = on("bf16.enabled") || on("bfloat16.enabled");
  if (const json* accum = get("data_types.grad_accum_dtype"); accum && accum->is_string()) {
    s.grad_accum_fp32 = accum->get<std::string>() == "fp32";
  }
  for (const char* kind : {"offload_optimizer", "offload_param"}) {
    const std::string block = absl::StrCat("zero_optimization.", kind);
    const json* device = get(block + ".device");
    std::string value = device && device->is_string() ? device->get<std::string>() : "none";
    const bool is_param = std::string(kind) == "offload_param";
    if (is_param && s.stage < 3) value = "none";  // DeepSpeed ignores it below stage 3.
    const json* path = get(block + ".nvme_path");
    if (!is_param && value == "nvme" && s.stage < 3) {
      value = "cpu";
      if (path && path->is_string()) s.optimizer_nvme_path_libzerorun = path->get<std::string>();
    }
    (is_param ? s.offload_param : s.offload_optimizer) = value;
    if (value == "nvme" && path && path->is_string()) {
      (is_param ? s.param_nvme_path : s.optimizer_nvme_path) = path->get<std::string>();
    }
  }
  if (const json* v = get("zero_optimization.sub_group_size"); v && v->is_number() && *v >= 1) {
    s.sub_group_size = v->get<double>();
  }
  if (const json* v = get("zero_optimization.offload_optimizer.buffer_count");
      v && v->is_number() && *v >= 1) {
    s.optimizer_buffer_count = v->get<int>();
  }
  return s;
}

json EffectiveConfig(const json& config) {
  json out = config;
  if (out.contains("zero_optimization") && out["zero_optimization"].is_boolean()) {
    out["zero_optimization"] = json{{"stage", out["zero_optimization"].get<bool>() ? 1 : 0}};
  }
  for (const KeySpec& spec : ConfigSchema()) {
    const std::string path = spec.path;
    const std::string parent = Parent(path);
    const std::string name = parent.empty() ? path : path.substr(parent.size() + 1);
    json* parent_node = &out;
    if (!parent.empty()) {
      parent_node = Lookup(out, parent);
      if (parent_node == nullptr || !parent_node->is_object()) continue;
    }
    if (parent_node->contains(name)) continue;
    const std::string def = spec.default_json;
    if (def == "null" && (spec.kind == ValueKind::kBlock || spec.kind == ValueKind::kAny)) continue;
    // Unprefixed aliases of stage3_* keys and deprecated names are not filled in, and a
    // stage3_* key is not filled when the user wrote its unprefixed alias.
    if (FindKey(absl::StrCat(parent, ".stage3_", name)) != nullptr) continue;
    if (name == "stage3_gather_fp16_weights_on_model_save") continue;
    if (absl::StartsWith(name, "stage3_") && parent_node->contains(name.substr(7))) continue;
    (*parent_node)[name] = json::parse(def);
  }
  json& zero = out["zero_optimization"];
  if (zero.is_object() && zero["overlap_comm"].is_null()) {
    const json& stage = zero["stage"];
    zero["overlap_comm"] = stage.is_number() && StageOf(stage) == 3;
  }
  json* type = Lookup(out, "optimizer.type");
  if (type && type->is_string()) {
    const std::string lower = absl::AsciiStrToLower(type->get<std::string>());
    if (lower == "adam" || lower == "adamw") {
      json& params = out["optimizer"]["params"];
      if (!params.is_object()) params = json::object();
      const json defaults = {{"lr", 1e-3},          {"betas", {0.9, 0.999}},   {"eps", 1e-8},
                             {"weight_decay", 0.0}, {"bias_correction", true}, {"amsgrad", false},
                             {"adam_w_mode", true}, {"torch_adam", false}};
      for (auto it = defaults.begin(); it != defaults.end(); ++it) {
        if (!params.contains(it.key())) params[it.key()] = it.value();
      }
    }
  }
  return out;
}

}  // namespace zerorun::dsconfig
