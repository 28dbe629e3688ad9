// DeepSpeed's batch-size resolution (reference section 11): derivation order, floor division,
// its four assertion strings verbatim, then a plain-words line saying which values would work.
#ifndef ZERORUN_RUNTIME_DSCONFIG_BATCH_H_
#define ZERORUN_RUNTIME_DSCONFIG_BATCH_H_

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "zerorun/training_config.h"

namespace zerorun::dsconfig {

// BatchTriple: zerorun/training_config.h.
// Resolves the triple for `world_size` data-parallel ranks (world_size >= 1). Unset values are
// nullopt. Returns FailedPrecondition whose message is DeepSpeed's error, a newline, and the fix:
//   neither TB nor MB: "Either train_batch_size or train_micro_batch_size_per_gpu needs to be
//     provided";
//   "Train batch size: TB has to be greater than 0" (and the same for micro batch and GA);
//   "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu *
//     gradient_acc_step * world_size TB != MB * GA * W".
absl::StatusOr<BatchTriple> ResolveBatch(std::optional<int64_t> train_batch_size,
                                         std::optional<int64_t> micro_batch_per_gpu,
                                         std::optional<int64_t> gradient_accumulation_steps,
                                         int world_size);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_BATCH_H_
