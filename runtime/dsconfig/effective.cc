// ResolveEffectiveConfig and ReadTrainingConfig: the effective config, resolved once, read typed.
#include "dsconfig/effective.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dsconfig/ds_config.h"
#include "dsconfig/finding.h"

namespace zerorun::dsconfig {
namespace {

using json = nlohmann::json;

constexpr const char* kBatchKeys[] = {"train_batch_size", "train_micro_batch_size_per_gpu",
                                      "gradient_accumulation_steps"};

}  // namespace

std::optional<int64_t> WholeNumber(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= -9.2e18 && d <= 9.2e18 && static_cast<double>(static_cast<int64_t>(d)) == d) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

namespace {

absl::Status NotEffective(const std::string& key, const json* v, const char* want) {
  return absl::InvalidArgumentError(absl::StrCat(
      "effective config key ", key, " is ", v == nullptr ? "missing" : Dump(*v), "; it must be ",
      want,
      " (an effective config has every batch key and DeepSpeed default filled in: launch "
      "with zerorun, or resolve the file with ResolveEffectiveConfig)"));
}

absl::StatusOr<int64_t> RequireInt(const json& root, const std::string& key) {
  const json* v = Lookup(root, key);
  std::optional<int64_t> n;
  if (v != nullptr) n = WholeNumber(*v);
  if (!n.has_value()) return NotEffective(key, v, "an integer");
  return *n;
}

absl::StatusOr<bool> RequireBool(const json& root, const std::string& key) {
  const json* v = Lookup(root, key);
  if (v == nullptr || !v->is_boolean()) return NotEffective(key, v, "true or false");
  return v->get<bool>();
}

}  // namespace

void SetBatch(const BatchTriple& batch, json* effective) {
  (*effective)["train_batch_size"] = batch.train_batch_size;
  (*effective)["train_micro_batch_size_per_gpu"] = batch.micro_batch_per_gpu;
  (*effective)["gradient_accumulation_steps"] = batch.gradient_accumulation_steps;
}

bool Resolution::valid() const {
  return std::none_of(findings.begin(), findings.end(),
                      [](const Finding& f) { return f.status == kCritical; });
}

Resolution Resolve(const JsonDocument& doc, const AutoInputs& inputs) {
  Resolution r;
  r.findings = ValidateConfig(doc);
  json config = doc.root;
  r.autos = ResolveAutoValues(&config, inputs);
  r.effective = EffectiveConfig(config);
  std::optional<int64_t> values[3];
  for (int i = 0; i < 3; ++i) {
    const json* v = Lookup(r.effective, kBatchKeys[i]);
    if (v == nullptr || v->is_null()) continue;
    values[i] = WholeNumber(*v);
    if (!values[i].has_value()) r.unresolved_batch.push_back(kBatchKeys[i]);
  }
  if (!r.unresolved_batch.empty() || inputs.world_size < 1) return r;
  r.batch = ResolveBatch(values[0], values[1], values[2], inputs.world_size);
  if (r.batch->ok()) SetBatch(**r.batch, &r.effective);
  return r;
}

absl::StatusOr<json> ResolveEffectiveConfig(const JsonDocument& doc, const AutoInputs& inputs) {
  AutoInputs at_least_one = inputs;
  at_least_one.world_size = std::max(inputs.world_size, 1);
  Resolution r = Resolve(doc, at_least_one);
  for (const Finding& f : r.findings) {
    if (f.status == kCritical) return absl::InvalidArgumentError(f.detail);
  }
  for (const AutoValue& v : r.autos) {
    if (!v.resolved) {
      return absl::FailedPreconditionError(absl::StrCat(
          doc.Where(v.key), ": ", v.key, " is \"auto\" and nothing resolves it. Fix: ", v.source));
    }
  }
  if (!r.unresolved_batch.empty()) {
    const std::string& key = r.unresolved_batch.front();
    return absl::InvalidArgumentError(absl::StrCat(doc.Where(key), ": ", key, " is ",
                                                   Dump(*Lookup(r.effective, key)),
                                                   "; it must be an integer"));
  }
  if (!r.batch->ok()) {
    return absl::FailedPreconditionError(absl::StrCat(doc.path, ": ", r.batch->status().message()));
  }
  return std::move(r.effective);
}

absl::StatusOr<TrainingConfig> ReadTrainingConfig(const json& effective) {
  TrainingConfig t;
  absl::StatusOr<int64_t> ints[4] = {
      RequireInt(effective, kBatchKeys[0]), RequireInt(effective, kBatchKeys[1]),
      RequireInt(effective, kBatchKeys[2]), RequireInt(effective, "zero_optimization.stage")};
  for (const auto& v : ints) {
    if (!v.ok()) return v.status();
  }
  t.batch = {*ints[0], *ints[1], *ints[2]};
  t.stage = static_cast<int>(*ints[3]);
  const json* clip = Lookup(effective, "gradient_clipping");
  if (clip == nullptr || !clip->is_number()) {
    return NotEffective("gradient_clipping", clip, "a number");
  }
  t.gradient_clipping = clip->get<double>();
  absl::StatusOr<bool> bools[3] = {RequireBool(effective, "zero_optimization.overlap_comm"),
                                   RequireBool(effective, "fp16.enabled"),
                                   RequireBool(effective, "bf16.enabled")};
  for (const auto& v : bools) {
    if (!v.ok()) return v.status();
  }
  t.overlap_comm = *bools[0];
  t.fp16 = *bools[1];
  t.bf16 = *bools[2];
  if (const json* alias = Lookup(effective, "bfloat16.enabled"); alias && alias->is_boolean()) {
    t.bf16 = t.bf16 || alias->get<bool>();  // DeepSpeed's older name of the bf16 block.
  }
  for (const auto& [block, dir] :
       {std::pair<const char*, std::string*>{"csv_monitor", &t.csv_monitor_dir},
        {"tensorboard", &t.tensorboard_dir}}) {
    const json* enabled = Lookup(effective, absl::StrCat(block, ".enabled"));
    if (enabled == nullptr || !enabled->is_boolean() || !enabled->get<bool>()) continue;
    std::string parts[2] = {"", "DeepSpeedJobName"};  // DeepSpeed's defaults.
    const char* keys[2] = {"output_path", "job_name"};
    for (int i = 0; i < 2; ++i) {
      const std::string key = absl::StrCat(block, ".", keys[i]);
      const json* v = Lookup(effective, key);
      if (v == nullptr || v->is_null()) continue;
      if (!v->is_string()) return NotEffective(key, v, "a string");
      parts[i] = v->get<std::string>();
    }
    if (parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("config key ", block,
                       ".job_name is \"\"; it names the folder the monitor writes "
                       "under output_path (remove the key for DeepSpeed's \"DeepSpeedJobName\")"));
    }
    // os.path.join(output_path, job_name).
    *dir = parts[0].empty() ? parts[1]
                            : absl::StrCat(parts[0], parts[0].back() == '/' ? "" : "/", parts[1]);
  }
  return t;
}

}  // namespace zerorun::dsconfig
