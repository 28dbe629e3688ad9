// libFuzzer harness: the DeepSpeed config path pre-flight and InitFromEnv run on user text
// (parse, validate, "auto", HF Trainer's mismatches, defaults, batch, typed read, the runtime's
// table, JSON output).
#include <cstddef>
#include <cstdint>
#include <string>

#include "dsconfig/auto_values.h"
#include "dsconfig/config_json.h"
#include "dsconfig/ds_config.h"
#include "dsconfig/effective.h"
#include "dsconfig/runtime_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zerorun::dsconfig;  // NOLINT: a harness, not library code.
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<JsonDocument> doc = ParseConfigJson("fuzz.json", text);
  if (!doc.ok()) return 0;
  (void)ValidateConfig(*doc);
  AutoInputs inputs;
  inputs.world_size = 1 + static_cast<int>(size % 8);
  inputs.train_args = {"--deepspeed", "x.json", "--per_device_train_batch_size", "4"};
  nlohmann::json config = doc->root;
  (void)ResolveAutoValues(&config, inputs);
  (void)FindHfMismatches(doc->root, inputs);
  const nlohmann::json effective = EffectiveConfig(config);
  (void)Dump(effective, 2);
  (void)Summarize(effective);
  absl::StatusOr<nlohmann::json> resolved = ResolveEffectiveConfig(*doc, inputs);
  if (resolved.ok()) {
    (void)ReadTrainingConfig(*resolved);
    (void)RuntimeSupport(*resolved);
  }
  return 0;
}
