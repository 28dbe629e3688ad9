// ParamStore: one rank's working weights (fp32 or the 16-bit working dtype) and the views the
// forward and backward passes compute with. A unit is resident (held in full: stages 0-2, and at
// stage 3 units of at most param_persistence_threshold elements), sharded (stage 3: this rank's
// shard in memory) or swapped (stage 3 with offload_param nvme: the shard in the ParamSwap file).
// Acquire hands out a unit's full weights: resident ones in place (16-bit ones widened into a
// view for an fp32 model), others gathered into a view from a bounded pool on the CommQueue,
// their shards read from NVMe first where they are swapped. Release drops the view unless the
// unit is kept for its backward pass or reused soon; after the first step, units are prefetched
// along the recorded acquire order within prefetch_bucket_size (and param_buffer_count /
// max_in_cpu for swapped shards). Publish shares a resident unit's new shard after the step.
//
// Engine thread only. Views and working() stay valid until the unit's view is dropped (Release
// to zero guards, or FreeViews) / as long as the store; a gather in flight writes its view on
// the queue until Acquire has waited for it.
#ifndef ZERORUN_RUNTIME_ZERO_PARAM_STORE_H_
#define ZERORUN_RUNTIME_ZERO_PARAM_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "offload/param_swap.h"
#include "zero/comm_queue.h"
#include "zero/unit_slots.h"
#include "zerorun/kernels.h"
#include "zerorun/zero_engine.h"

namespace zerorun {

class ParamStore {
 public:
  // Working weights and views from `allocator`, widened and copied by `kernels` (both must
  // outlive the store). `swap_dir`: the directory of the parameter swap file (offload_param
  // nvme), else empty.
  // InvalidArgument when a swapped unit's shard exceeds param_buffer_size; allocation and swap
  // file errors as they come.
  static absl::StatusOr<std::unique_ptr<ParamStore>> Create(
      const Layout& layout, const ZeroOptions& options, Communicator* comm, CommQueue* queue,
      PhaseClock* clock, Allocator* allocator, Kernels* kernels, const std::string& swap_dir);
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  bool resident(size_t unit) const { return units_[unit].resident; }
  bool swapped(size_t unit) const { return units_[unit].swapped; }
  // The working weights held in memory: the unit's padded elements (resident), this rank's shard
  // (sharded) or nothing (swapped). In the working dtype.
  BufferView working(size_t unit) const { return units_[unit].work.view(); }
  ParamSwap* swap() const { return swap_.get(); }  // nullptr without offload_param nvme.

  // A unit's full weights for a pass: `base` its fp32 values (the view, or the resident fp32
  // weights), `working` the same in the working dtype. Waits for the unit's gather or post-step
  // share. Records the order (first step) or follows it (prefetching ahead).
  struct View {
    float* base;
    BufferView working;
  };
  absl::StatusOr<View> Acquire(size_t unit, Pass pass);
  void Release(size_t unit);
  int refs(size_t unit) const { return units_[unit].refs; }
  void KeepForBackward(size_t unit, bool keep) { units_[unit].keep = keep; }

  // The step: every view dropped; then, after the first step, the recorded order checked across
  // ranks (a collective; a mismatch turns prefetching off with a notice), and the next step
  // follows it from its start.
  void FreeViews();
  absl::Status EndStep();
  // After the step wrote this rank's shard of a resident unit (stages 1-3): all-gathers it on
  // the queue; the unit's next Acquire waits for it.
  void Publish(size_t unit);

  const std::vector<std::pair<size_t, Pass>>& order() const { return trace_; }
  const GatherStats& stats() const { return stats_; }
  // What the store noticed since the last call (the engine passes it on).
  std::vector<std::string> TakeNotices() { return std::exchange(notices_, {}); }
  size_t working_bytes() const;  // Held in memory.
  size_t swapped_bytes() const;  // Held in the swap file.
  size_t view_bytes() const { return views_.bytes(); }

 private:
  struct Unit {
    bool resident = true;     // Full working copy held.
    bool swapped = false;     // Not resident, the working shard in the ParamSwap (work empty).
    Buffer work;              // Working weights: full (resident) or the shard.
    int refs = 0;             // Live guards.
    int view = -1;            // Parameter slot with the fp32 view, -1 when none.
    CommMark view_ready;      // The gather that fills `view`.
    CommMark weights_ready;   // Resident weights: the post-step gather to wait for.
    bool prefetched = false;  // Gathered ahead and not yet acquired.
    bool keep = false;        // KeepForBackward.
    Pass last_pass = Pass::kForward;
    uint64_t last_use = 0;  // LRU clock of parameter slots.
  };
  ParamStore(const Layout& layout, const ZeroOptions& options, Communicator* comm, CommQueue* queue,
             PhaseClock* clock, Allocator* allocator, Kernels* kernels);
  bool sixteen() const { return options_.dtype != DType::kFp32; }
  absl::StatusOr<int> TakeSlot(bool prefetch);
  // Fills slot `slot` with the unit's weights (widened now, or gathered on the queue); the slot
  // stays free on an error.
  absl::Status StartView(size_t unit, int slot);
  void FreeView(size_t unit);
  bool ReusedSoon(size_t unit) const;
  absl::Status PrefetchAhead();
  void NoteAcquire(size_t unit, Pass pass);
  absl::Status CheckOrderAcrossRanks();

  const Layout& layout_;
  const ZeroOptions& options_;
  Communicator* comm_;
  CommQueue* queue_;
  PhaseClock* clock_;
  Allocator* allocator_;
  Kernels* kernels_;
  std::vector<Unit> units_;
  UnitSlots views_;
  std::unique_ptr<ParamSwap> swap_;
  std::vector<std::pair<size_t, Pass>> trace_;  // The first step's acquires.
  size_t trace_position_ = 0;
  uint64_t clock_tick_ = 0;
  bool first_step_done_ = false;
  bool prefetch_enabled_ = true;
  GatherStats stats_;
  std::vector<std::string> notices_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_ZERO_PARAM_STORE_H_
