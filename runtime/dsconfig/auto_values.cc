// "auto" resolution: zerorun flag > train-command argument > HF Trainer default > unresolved.
#include "dsconfig/auto_values.h"

#include <cmath>
#include <functional>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "dsconfig/config_schema.h"
#include "dsconfig/ds_config.h"

namespace zerorun::dsconfig {
namespace {

using json = nlohmann::json;

bool IsAuto(const json& v) { return v.is_string() && v.get<std::string>() == "auto"; }

void CollectAutos(const json& node, const std::string& path, std::vector<std::string>* out) {
  if (IsAuto(node)) {
    out->push_back(path);
    return;
  }
  if (!node.is_object()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    CollectAutos(it.value(), path.empty() ? it.key() : absl::StrCat(path, ".", it.key()), out);
  }
}

void Set(json* root, const std::string& path, const json& value) {
  json* node = root;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    node = &(*node)[part];
    start = dot + 1;
  }
}

class Resolver {
 public:
  Resolver(json* config, const AutoInputs& inputs)
      : config_(config), in_(inputs), hf_(FindArg(inputs.train_args, "deepspeed").has_value()) {}

  std::vector<AutoValue> Run() {
    std::vector<std::string> keys;
    CollectAutos(*config_, "", &keys);
    // Batch keys first: train_batch_size depends on the other two.
    std::stable_sort(keys.begin(), keys.end(),
                     [](const std::string& a, const std::string& b) { return Rank(a) < Rank(b); });
    std::vector<AutoValue> out;
    for (const std::string& key : keys) {
      AutoValue v = Resolve(key);
      if (v.resolved) Set(config_, key, v.value);
      out.push_back(std::move(v));
    }
    return out;
  }

 private:
  static int Rank(const std::string& key) {
    if (key == "train_micro_batch_size_per_gpu") return 0;
    if (key == "gradient_accumulation_steps") return 1;
    if (key == "train_batch_size") return 2;
    if (key == "optimizer.params.lr") return 3;
    return 4;
  }

  // A numeric value from a zerorun flag, then a train argument, then HF's default.
  AutoValue Number(const std::string& key, std::optional<double> flag, const char* flag_name,
                   const char* arg, std::optional<double> hf_default, bool integer,
                   const std::string& unresolved_hint) {
    AutoValue v{key, false, nullptr, ""};
    auto as_json = [&](double x) {
      return integer ? json(static_cast<int64_t>(std::llround(x))) : json(x);
    };
    if (flag.has_value()) {
      v = {key, true, as_json(*flag), absl::StrCat("zerorun ", flag_name)};
    } else if (arg != nullptr) {
      if (auto text = FindArg(in_.train_args, arg); text.has_value()) {
        double x = 0;
        if (absl::SimpleAtod(*text, &x)) {
          v = {key, true, as_json(x), absl::StrCat("--", arg, " ", *text, " in the train command")};
        }
      }
    }
    if (!v.resolved && hf_ && hf_default.has_value()) {
      v = {key, true, as_json(*hf_default),
           absl::StrCat("HF Trainer default", arg ? absl::StrCat(" of --", arg) : "",
                        " (the train command passes --deepspeed)")};
    }
    if (!v.resolved) v.source = unresolved_hint;
    if (v.resolved) values_[key] = v.value;
    return v;
  }

  // Whether the train command sets flag `arg` (--arg, --arg true/false, --arg=V).
  std::optional<bool> FlagArg(const std::string& arg) const {
    const std::optional<std::string> text = FindArg(in_.train_args, arg);
    if (!text.has_value()) {
      const bool bare = std::find(in_.train_args.begin(), in_.train_args.end(),
                                  absl::StrCat("--", arg)) != in_.train_args.end();
      return bare ? std::optional<bool>(true) : std::nullopt;
    }
    if (absl::StartsWith(*text, "--")) return true;  // Bare flag followed by another flag.
    const std::string lower = absl::AsciiStrToLower(*text);
    return !(lower == "false" || lower == "0" || lower == "no");
  }

  // HF: enabled = --arg or --arg_full_eval (fp16.enabled, bf16.enabled).
  AutoValue Flag(const std::string& key, const std::string& arg) {
    const std::string full_eval = absl::StrCat(arg, "_full_eval");
    const std::optional<bool> train = FlagArg(arg), eval = FlagArg(full_eval);
    if (train.has_value() || eval.has_value()) {
      const bool value = train.value_or(false) || eval.value_or(false);
      return {key, true, value,
              absl::StrCat(train ? absl::StrCat("--", arg) : "", train && eval ? " and " : "",
                           eval ? absl::StrCat("--", full_eval) : "", " in the train command")};
    }
    if (hf_) {
      return {key, true, false,
              absl::StrCat("HF Trainer default (no --", arg,
                           "; the train command passes --deepspeed)")};
    }
    return {key, false, nullptr,
            absl::StrCat("filled by the training program; pass --", arg,
                         " to the train command to resolve it now")};
  }

  std::optional<double> Known(const std::string& key) const {
    auto it = values_.find(key);
    if (it != values_.end() && it->second.is_number()) return it->second.get<double>();
    const json* v = Lookup(*config_, key);
    if (v != nullptr && v->is_number()) return v->get<double>();
    return std::nullopt;
  }

  // An HF argument's value in the train command, else HF's default; a zerorun flag first for
  // the two batch arguments.
  std::optional<double> HfNumber(const std::string& arg, double hf_default) const {
    if (arg == "per_device_train_batch_size" && in_.micro_batch) return *in_.micro_batch;
    if (arg == "gradient_accumulation_steps" && in_.grad_accum) return *in_.grad_accum;
    double x = 0;
    if (auto text = FindArg(in_.train_args, arg); text && absl::SimpleAtod(*text, &x)) return x;
    return hf_default;
  }

  static std::optional<double> Opt(std::optional<int64_t> v) {
    return v.has_value() ? std::optional<double>(static_cast<double>(*v)) : std::nullopt;
  }

  AutoValue Resolve(const std::string& key) {
    const std::optional<double> h = Opt(in_.hidden_size);
    if (key == "train_micro_batch_size_per_gpu") {
      return Number(key, Opt(in_.micro_batch), "--micro-batch-size", "per_device_train_batch_size",
                    8, true,
                    "pass --micro-batch-size N to zerorun, or --per_device_train_batch_size N "
                    "to the train command");
    }
    if (key == "gradient_accumulation_steps") {
      return Number(key, Opt(in_.grad_accum), "--gradient-accumulation-steps",
                    "gradient_accumulation_steps", 1, true,
                    "pass --gradient-accumulation-steps N to zerorun, or "
                    "--gradient_accumulation_steps N to the train command");
    }
    if (key == "train_batch_size") {
      if (in_.train_batch.has_value()) {
        return {key, true, *in_.train_batch, "zerorun --train-batch-size"};
      }
      // HF Trainer multiplies its arguments (or their defaults), whatever the config holds.
      const auto mb = hf_ ? HfNumber("per_device_train_batch_size", 8)
                          : Known("train_micro_batch_size_per_gpu");
      const auto ga =
          hf_ ? HfNumber("gradient_accumulation_steps", 1) : Known("gradient_accumulation_steps");
      if (mb && ga && in_.world_size > 0) {
        const int64_t tb = static_cast<int64_t>(*mb * *ga) * in_.world_size;
        return {key, true, tb,
                absl::StrCat("world_size x micro batch x accumulation = ", in_.world_size, " x ",
                             *mb, " x ", *ga, " (as HF Trainer fills it)")};
      }
      return {key, false, nullptr,
              "world_size x micro batch x accumulation, once both are known; pass "
              "--micro-batch-size N (and --gradient-accumulation-steps N) to zerorun"};
    }
    if (key == "gradient_clipping") {
      return Number(key, std::nullopt, "", "max_grad_norm", 1.0, false,
                    "filled by the training program (HF: --max_grad_norm); pass --max_grad_norm "
                    "to the train command to resolve it now");
    }
    if (key == "fp16.enabled") return Flag(key, "fp16");
    if (key == "bf16.enabled" || key == "bfloat16.enabled") return Flag(key, "bf16");
    if (key == "optimizer.params.lr") {
      return Number(key, std::nullopt, "", "learning_rate", 5e-5, false,
                    "pass --learning_rate to the train command");
    }
    if (key == "optimizer.params.eps") {
      return Number(key, std::nullopt, "", "adam_epsilon", 1e-8, false,
                    "pass --adam_epsilon to the train command");
    }
    if (key == "optimizer.params.weight_decay") {
      return Number(key, std::nullopt, "", "weight_decay", 0.0, false,
                    "pass --weight_decay to the train command");
    }
    if (key == "optimizer.params.betas") {
      AutoValue b1 = Number(key, std::nullopt, "", "adam_beta1", 0.9, false, "");
      AutoValue b2 = Number(key, std::nullopt, "", "adam_beta2", 0.999, false, "");
      if (b1.resolved && b2.resolved) {
        return {key, true, json::array({b1.value, b2.value}),
                absl::StrCat(b1.source, "; ", b2.source)};
      }
      return {key, false, nullptr, "pass --adam_beta1 and --adam_beta2 to the train command"};
    }
    if (key == "scheduler.params.warmup_min_lr") {
      if (hf_)
        return {key, true, 0.0,
                "HF Trainer, which always sets 0 (the train command passes --deepspeed)"};
      return {key, false, nullptr, "filled by the training program (HF Trainer sets 0)"};
    }
    if (key == "scheduler.params.warmup_max_lr") {
      if (auto lr = Known("optimizer.params.lr")) {
        return {key, true, *lr, "the resolved optimizer learning rate (as HF Trainer fills it)"};
      }
      return Number(key, std::nullopt, "", "learning_rate", 5e-5, false,
                    "pass --learning_rate to the train command");
    }
    if (key == "scheduler.params.warmup_num_steps") {
      // HF's get_warmup_steps: --warmup_steps when > 0, else ceil(ratio x training steps).
      AutoValue v = Number(key, std::nullopt, "", "warmup_steps", std::nullopt, true, "");
      if (v.resolved && v.value.get<int64_t>() > 0) return v;
      values_.erase(key);
      auto ratio = FindArg(in_.train_args, "warmup_ratio");
      auto steps = FindArg(in_.train_args, "max_steps");
      double r = 0, s = 0;
      if (ratio && steps && absl::SimpleAtod(*ratio, &r) && absl::SimpleAtod(*steps, &s) && s > 0) {
        return {key, true, static_cast<int64_t>(std::ceil(r * s)),
                absl::StrCat("ceil(--warmup_ratio ", *ratio, " x --max_steps ", *steps, ")")};
      }
      if (v.resolved && !ratio) return v;  // --warmup_steps 0.
      if (hf_ && !ratio) {
        return {key, true, 0, "HF Trainer default (no --warmup_steps or --warmup_ratio)"};
      }
      return {key, false, nullptr,
              "filled by the training program from the dataset length; pass --warmup_steps N "
              "(or --max_steps with --warmup_ratio) to the train command"};
    }
    if (key == "scheduler.params.total_num_steps") {
      auto steps = FindArg(in_.train_args, "max_steps");
      double s = 0;
      if (steps && absl::SimpleAtod(*steps, &s) && s > 0) {
        return {key, true, static_cast<int64_t>(s),
                absl::StrCat("--max_steps ", *steps, " in the train command")};
      }
      return {key, false, nullptr,
              "filled by the training program from the dataset length and epochs; pass "
              "--max_steps N to the train command to resolve it now"};
    }
    const std::string hidden_hint =
        "filled by HF Trainer from the model's hidden_size; pass --hidden-size H to zerorun";
    if (key == "zero_optimization.reduce_bucket_size") {
      if (h) return {key, true, static_cast<int64_t>(*h * *h), "--hidden-size: H x H"};
      return {key, false, nullptr, hidden_hint + " (H x H)"};
    }
    const bool zero3_key = key == "zero_optimization.stage3_prefetch_bucket_size" ||
                           key == "zero_optimization.prefetch_bucket_size" ||
                           key == "zero_optimization.stage3_param_persistence_threshold" ||
                           key == "zero_optimization.param_persistence_threshold";
    if (zero3_key && hf_ && Known("zero_optimization.stage").value_or(0) != 3) {
      return {key, false, nullptr,
              "left \"auto\" by HF Trainer, which fills it only at ZeRO stage 3; set a number "
              "or remove the key"};
    }
    if (key == "zero_optimization.stage3_prefetch_bucket_size" ||
        key == "zero_optimization.prefetch_bucket_size") {
      // Rounded to an integer: HF's old float 0.9*H^2 broke DeepSpeed >= 0.15 (issue 6525).
      if (h) {
        return {key, true, static_cast<int64_t>(0.9 * *h * *h), "--hidden-size: int(0.9 x H x H)"};
      }
      return {key, false, nullptr, hidden_hint + " (0.9 x H x H)"};
    }
    if (key == "zero_optimization.stage3_param_persistence_threshold" ||
        key == "zero_optimization.param_persistence_threshold") {
      if (h) return {key, true, static_cast<int64_t>(10 * *h), "--hidden-size: 10 x H"};
      return {key, false, nullptr, hidden_hint + " (10 x H)"};
    }
    // No known filler. Inside DeepSpeed's pydantic blocks "auto" is dropped (default used).
    const size_t dot = key.rfind('.');
    const std::string block = dot == std::string::npos ? "" : key.substr(0, dot);
    if (IsStrictBlock(block)) {
      const KeySpec* spec = FindKey(key);
      return {key, false, nullptr,
              absl::StrCat("no known filler; DeepSpeed drops \"auto\" here and uses its default ",
                           spec ? spec->default_json : "")};
    }
    return {key, false, nullptr,
            "no known filler; the training program must replace it (DeepSpeed itself fails on "
            "an unfilled \"auto\" here)"};
  }

  json* config_;
  const AutoInputs& in_;
  const bool hf_;
  std::map<std::string, json> values_;
};

}  // namespace

const std::vector<std::string>& HfValueArguments() {
  static const std::vector<std::string> kNames = {"per_device_train_batch_size",
                                                  "gradient_accumulation_steps",
                                                  "max_grad_norm",
                                                  "learning_rate",
                                                  "adam_beta1",
                                                  "adam_beta2",
                                                  "adam_epsilon",
                                                  "weight_decay",
                                                  "warmup_steps",
                                                  "warmup_ratio",
                                                  "max_steps",
                                                  "deepspeed"};
  return kNames;
}

const std::vector<std::string>& HfFlagArguments() {
  static const std::vector<std::string> kNames = {"bf16", "fp16"};
  return kNames;
}

std::optional<std::string> FindArg(const std::vector<std::string>& args, const std::string& name) {
  std::optional<std::string> found;
  const std::string flag = absl::StrCat("--", name);
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size()) {
      found = args[i + 1];
    } else if (absl::StartsWith(args[i], flag + "=")) {
      found = args[i].substr(flag.size() + 1);
    }
  }
  return found;
}

std::vector<AutoValue> ResolveAutoValues(json* config, const AutoInputs& inputs) {
  return Resolver(config, inputs).Run();
}

std::vector<HfMismatch> FindHfMismatches(const json& config, const AutoInputs& inputs) {
  std::vector<HfMismatch> out;
  if (!FindArg(inputs.train_args, "deepspeed").has_value()) return out;
  const bool auto_batch = std::find(inputs.train_args.begin(), inputs.train_args.end(),
                                    "--auto_find_batch_size") != inputs.train_args.end();
  // HF's fill_match keys, in its order. HF's values are what this resolver (which follows HF's
  // rules) gives them as "auto": one resolution of the config with every written one so.
  static const char* const kChecked[] = {"train_micro_batch_size_per_gpu",
                                         "gradient_accumulation_steps",
                                         "train_batch_size",
                                         "gradient_clipping",
                                         "optimizer.params.lr",
                                         "optimizer.params.betas",
                                         "optimizer.params.eps",
                                         "optimizer.params.weight_decay",
                                         "scheduler.params.warmup_max_lr",
                                         "fp16.enabled",
                                         "bf16.enabled",
                                         "scheduler.params.total_num_steps",
                                         "scheduler.params.warmup_num_steps"};
  json probe = config;
  std::map<std::string, json> written;
  for (const char* key : kChecked) {
    const std::string k = key;
    if (auto_batch && (k == "train_micro_batch_size_per_gpu" || k == "train_batch_size")) continue;
    const json* value = Lookup(config, k);
    if (value == nullptr || value->is_null() || IsAuto(*value)) continue;
    written[k] = *value;
    Set(&probe, k, "auto");
  }
  if (written.empty()) return out;
  const std::vector<AutoValue> hf = ResolveAutoValues(&probe, inputs);
  for (const char* key : kChecked) {  // In HF's order.
    auto it = written.find(key);
    if (it == written.end()) continue;
    for (const AutoValue& v : hf) {
      if (v.key == it->first && v.resolved && v.value != it->second) {
        out.push_back({it->first, it->second, v.value, v.source});
      }
    }
  }
  return out;
}

}  // namespace zerorun::dsconfig
