// Checkpoints of a ZeroEngine: <save_dir>/<tag>/ holds one shard file per rank (its fp32 masters,
// Adam m and v in state order) and manifest.json (layout, per-rank byte ranges, sha256 per file,
// world size, stage, dtype, version, the caller's state); <save_dir>/latest names the newest
// complete tag (DeepSpeed's convention). Saves are atomic: a crash or a failing rank leaves the
// previous checkpoint and `latest` untouched. Loading reshards: any world size and ZeRO stage, and
// another working dtype (masters are fp32).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_CHECKPOINT_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_CHECKPOINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "zerorun/comm.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

// DeepSpeed's default tag for step N: "global_step<N>".
std::string DefaultTag(int64_t step);

// Collective: every rank calls it with the same arguments. Writes <dir>/<tag>.tmp/, fsyncs every
// file and the directories, renames it to <dir>/<tag> once every rank's shard is on disk, then
// replaces <dir>/latest. `client_state` (JSON text: the caller's step, LR schedule, data position)
// and `config_json` go into the manifest. On any rank's failure every rank returns an error
// naming the failing rank(s) and path; nothing of an earlier checkpoint is touched.
// With keep_last > 0, rank 0 then removes the oldest complete checkpoints in `dir` (by their
// manifests' step) until keep_last remain; 0 keeps all.
absl::Status SaveCheckpoint(ZeroEngine& engine, Communicator& comm, const std::string& dir,
                            const std::string& tag, const std::string& client_state,
                            const std::string& config_json, int keep_last = 0);

// Collective. Loads <dir>/<tag> (empty tag: the one <dir>/latest names) into `engine` and returns
// its client_state. At the saved world size and stage each rank reads its own shard whole and
// checks its sha256; otherwise each rank reads only the byte ranges of the old shards it needs
// now (sizes checked; `zerorun ckpt verify` checks their sha256). NotFound when there is none;
// DataLoss naming the file when a shard disagrees with the manifest; FailedPrecondition naming the
// unit when the checkpoint is of another model.
absl::StatusOr<std::string> LoadCheckpoint(ZeroEngine& engine, Communicator& comm,
                                           const std::string& dir, const std::string& tag);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_CHECKPOINT_H_
