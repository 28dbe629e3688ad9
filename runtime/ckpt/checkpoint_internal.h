// What checkpoint save and load share: agreeing on an outcome across ranks, shard file names and
// the layout every manifest records.
#ifndef ZERORUN_RUNTIME_CKPT_CHECKPOINT_INTERNAL_H_
#define ZERORUN_RUNTIME_CKPT_CHECKPOINT_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "zerorun/comm.h"
#include "zerorun/zero_engine.h"

namespace zerorun::ckpt {

// Collective. OK when every rank's `mine` is OK, else every rank returns an error with the status
// code of the lowest failing rank (so every rank exits alike), naming the failing ranks and, on
// those ranks, their own reason.
absl::Status Agree(Communicator& comm, const absl::Status& mine, const std::string& what);

// "zero_rank_<rank>.bin".
std::string ShardName(int rank);

// The engine's units and tensors (name, shape, offset, numel, padding, shard size) as JSON.
nlohmann::json LayoutJson(const ZeroEngine& engine);

// Per unit, where ZeroEngine::ShardSpans() put that unit's masters (nullptr for a unit of which
// this rank owns nothing); the spans' last two are m and v.
std::vector<float*> UnitMasters(const ZeroEngine& engine,
                                const std::vector<ZeroEngine::Span>& spans);

// InternalError "<what> <path>: <strerror(errno)>".
absl::Status Errno(const std::string& what, const std::string& path);

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_CHECKPOINT_INTERNAL_H_
