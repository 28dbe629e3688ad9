// The one effective config a job runs with: resolved once (by the launcher for its ranks, or by
// InitFromEnv for a rank started by hand) and read typed by the runtime, which fills no default.
#ifndef ZERORUN_RUNTIME_DSCONFIG_EFFECTIVE_H_
#define ZERORUN_RUNTIME_DSCONFIG_EFFECTIVE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dsconfig/auto_values.h"
#include "dsconfig/batch.h"
#include "dsconfig/config_json.h"
#include "dsconfig/finding.h"
#include "nlohmann/json.hpp"
#include "zerorun/training_config.h"

namespace zerorun::dsconfig {

// The integer `v` holds (4.0 counts, as JSON may write it), or nullopt for anything else: a
// fraction, a value outside int64, a string, ...
std::optional<int64_t> WholeNumber(const nlohmann::json& v);

// Writes the resolved triple into the effective config's three batch keys.
void SetBatch(const BatchTriple& batch, nlohmann::json* effective);

// The one resolution of a config document for a job: validation, "auto" values from `inputs`,
// DeepSpeed's defaults, the batch triple for inputs.world_size ranks. Pre-flight shows every part
// as rows; ResolveEffectiveConfig turns the first problem into an error. Pure.
struct Resolution {
  std::vector<Finding> findings;  // ValidateConfig's (CRITICAL ones make the document invalid).
  std::vector<AutoValue> autos;   // Every "auto" key: resolved (value, source) or why not.
  nlohmann::json effective;       // DeepSpeed's defaults over the document with autos filled in.
  // Batch keys still "auto" or not integers: then there is no triple.
  std::vector<std::string> unresolved_batch;
  // The triple (also written into `effective`) or DeepSpeed's error for it; absent when
  // unresolved_batch is not empty or inputs.world_size < 1.
  std::optional<absl::StatusOr<BatchTriple>> batch;
  bool valid() const;
};
Resolution Resolve(const JsonDocument& doc, const AutoInputs& inputs);

// Resolve for a rank that reads the user's file itself (no launcher, so no rows): the first
// CRITICAL finding is the error (naming file:line and the fix), a key still "auto" is
// FailedPrecondition naming it, a batch key that is not an integer InvalidArgument, the batch
// arithmetic's failure FailedPrecondition with DeepSpeed's words (world size: inputs.world_size,
// at least 1). The result is an effective config ReadTrainingConfig accepts.
absl::StatusOr<nlohmann::json> ResolveEffectiveConfig(const JsonDocument& doc,
                                                      const AutoInputs& inputs);

// The keys every training loop needs, typed (zerorun/training_config.h). A key the resolution
// always writes that is missing or mistyped is InvalidArgument naming it (the file was not an
// effective config: resolve it with ResolveEffectiveConfig first).
absl::StatusOr<TrainingConfig> ReadTrainingConfig(const nlohmann::json& effective);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_EFFECTIVE_H_
