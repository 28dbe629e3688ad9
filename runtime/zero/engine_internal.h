// Internal state of ZeroEngine shared by zero_engine.cc (set-up, step, memory), zero_units.cc
// (acquire, release, gather, prefetch, gradients), zero_values.cc (values, masters) and
// zero_comm.cc (the communication stream). Engine-thread state unless marked otherwise.
#ifndef ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_
#define ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_

#include <cstdint>
#include <vector>

#include "zero/comm_queue.h"
#include "zero/grad_store.h"
#include "zero/unit_slots.h"
#include "zerorun/comm.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

struct ZeroEngine::Unit {
  bool resident = true;          // Full working copy held (stages 0-2; persistent units of 3).
  bool on_nvme = false;          // Not resident, working shard in the ParamSwap (not work*).
  std::vector<float> work32;     // fp32 working weights: full (resident) or the shard.
  std::vector<uint16_t> work16;  // 16-bit working weights, same.
  int refs = 0;                  // Live guards.
  int view = -1;                 // Parameter slot with the fp32 view, -1 when none.
  CommMark view_ready;           // The gather that fills `view`.
  CommMark weights_ready;        // Resident weights: the post-step gather to wait for.
  bool prefetched = false;       // Gathered ahead and not yet acquired.
  bool keep = false;             // KeepForBackward.
  Pass last_pass = Pass::kForward;
  uint64_t last_use = 0;  // LRU clock of parameter slots.
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_ENGINE_INTERNAL_H_
