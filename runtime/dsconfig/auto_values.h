// "auto" values (HF Trainer / Axolotl configs): resolved before launch from zerorun flags or the
// train command's HF-style arguments, each with the source it came from; the rest reported.
#ifndef ZERORUN_RUNTIME_DSCONFIG_AUTO_VALUES_H_
#define ZERORUN_RUNTIME_DSCONFIG_AUTO_VALUES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace zerorun::dsconfig {

struct AutoInputs {
  // zerorun flags (highest precedence).
  std::optional<int64_t> micro_batch;  // --micro-batch-size
  std::optional<int64_t> grad_accum;   // --gradient-accumulation-steps
  std::optional<int64_t> train_batch;  // --train-batch-size
  std::optional<int64_t> hidden_size;  // --hidden-size (ZeRO bucket sizes, as HF derives them)
  // The training program's own arguments, e.g. --per_device_train_batch_size 4.
  std::vector<std::string> train_args;
  int world_size = 0;  // 0 = unknown (the hostfile could not be read).
};

struct AutoValue {
  std::string key;  // Dotted config key.
  bool resolved = false;
  nlohmann::json value;  // The value used, when resolved.
  std::string source;    // Where the value came from, or what would fill it.
};

// Replaces every resolvable "auto" in `config` and returns one entry per "auto" found, in the
// order: micro batch, accumulation, train batch, then the rest in key order. HF Trainer's
// defaults are used only when the train command carries --deepspeed (HF Trainer's flag), and the
// source then says so.
std::vector<AutoValue> ResolveAutoValues(nlohmann::json* config, const AutoInputs& inputs);

// A key HF Trainer would refuse at start-up (trainer_config_finalize raises "Please correct the
// following DeepSpeed config values that mismatch TrainingArguments values" on every rank): the
// config writes a value where HF fills one from its arguments, and the two differ.
struct HfMismatch {
  std::string key;         // Dotted config key.
  nlohmann::json written;  // The config's value.
  nlohmann::json hf;       // What HF Trainer computes for it.
  std::string source;      // Where HF's value comes from (the argument, or HF's default).
};

// Every HfMismatch of `config` (as written, "auto" values unresolved) for the train command in
// `inputs`; empty unless that command passes --deepspeed (HF Trainer's flag). The keys are the
// ones HF checks (its fill_match): batch sizes, clipping, optimizer and scheduler values,
// fp16/bf16; micro and train batch are skipped with --auto_find_batch_size, as HF does.
std::vector<HfMismatch> FindHfMismatches(const nlohmann::json& config, const AutoInputs& inputs);

// The HF Trainer-style arguments of the train command that fill "auto" values (without "--"):
// those that take a value, and the flags (--bf16, --fp16, which may also take true/false). A
// libzerorun program accepts them all (pre-flight suggests them), so a resolution names only
// arguments the program takes.
const std::vector<std::string>& HfValueArguments();
const std::vector<std::string>& HfFlagArguments();

// The value of `--name V` or `--name=V` in `args` (last occurrence), if present.
std::optional<std::string> FindArg(const std::vector<std::string>& args, const std::string& name);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_AUTO_VALUES_H_
