// ShardState allocation (in this process's memory: device and host are one on a CPU rank).
#include "zerorun/shard_state.h"

#include <algorithm>

namespace zerorun {

const char* MemorySpaceName(MemorySpace space) {
  switch (space) {
    case MemorySpace::kDevice:
      return "device";
    case MemorySpace::kHost:
      return "host";
    case MemorySpace::kNvme:
      return "nvme";
  }
  return "?";
}

ShardState::ShardState(size_t elements, bool separate_master, Accumulator accumulator,
                       MemorySpace space, MemorySpace accumulator_space)
    : elements_(elements),
      separate_master_(separate_master),
      space_(space),
      accumulator_(accumulator) {
  if (accumulator_space != MemorySpace::kNvme) {  // Else in the engine's swap file.
    if (accumulator == Accumulator::kFp32) acc32_.assign(elements, 0.0f);
    if (accumulator == Accumulator::kSixteen) acc16_.assign(elements, 0);
  }
  if (space == MemorySpace::kNvme) return;  // The engine's swap file holds these too.
  exp_avg_.assign(elements, 0.0f);
  exp_avg_sq_.assign(elements, 0.0f);
  if (separate_master) master_.assign(elements, 0.0f);
}

void ShardState::ZeroAccumulator() {
  std::fill(acc32_.begin(), acc32_.end(), 0.0f);
  std::fill(acc16_.begin(), acc16_.end(), 0);
}

}  // namespace zerorun
