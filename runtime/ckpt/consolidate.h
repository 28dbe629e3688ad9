// `zerorun ckpt consolidate`'s core: a checkpoint's full weights (the fp32 masters, or rounded to
// bf16) as one safetensors file. No engine: the launcher and the fuzz harness link this alone.
#ifndef ZERORUN_RUNTIME_CKPT_CONSOLIDATE_H_
#define ZERORUN_RUNTIME_CKPT_CONSOLIDATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "ckpt/manifest.h"

namespace zerorun::ckpt {

// What a consolidation wrote: tensors and bytes of weights.
struct Consolidated {
  std::string file;  // The whole safetensors file (header and data).
  size_t tensors = 0;
  size_t data_bytes = 0;
};

// Checks what a load checks before reading anything: every shard whole against its size and
// sha256 (VerifyShard: NotFound naming a missing shard, DataLoss naming a corrupt one, another
// run's, or shards swapped); the manifest's layout was range-checked by ReadManifest. Then the
// weights, tensor by tensor in unit order, named "<unit>.<tensor>". FailedPrecondition for a
// manifest of initial weights (`zerorun ckpt import`), which holds its safetensors file as it is.
absl::StatusOr<Consolidated> ConsolidateWeights(const Manifest& manifest, bool bf16);

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_CONSOLIDATE_H_
