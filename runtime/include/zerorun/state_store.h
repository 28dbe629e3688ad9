// StateStore: one rank's optimizer-side state, chunk by chunk, wherever it lives. The engine's
// step visits it through one loop (Begin, then per chunk Acquire / step / Release, then Finish)
// and checkpoints read and write it through the same object (Data, or Read / Write where it is
// not in memory). Implementations: in memory (here, from an Allocator) and on NVMe
// (runtime/offload/nvme_state_store.h: ZeRO-Infinity's swap file, read ahead and written behind);
// pinned host and device memory plug in behind the same interface (issue 30).
//
// The arrays, per element of the rank's shard in "state order" (unit by unit, the elements the
// rank owns, each unit cut into chunks of at most sub_group_size elements): fp32 masters (only
// with 16-bit working weights; fp32 weights are their own masters), Adam's m and v (fp32), and
// the gradient accumulator of stages 2-3 (fp32, or the working dtype).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_STATE_STORE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_STATE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "zerorun/device.h"

namespace zerorun {

// Where model state lives: kDevice, the rank's compute memory (a GPU's, or host memory on a CPU
// rank); kHost, host memory next to the device (ZeRO-Offload's "cpu", pinned with pin_memory),
// on a CPU rank the very memory kDevice is; kNvme, files under nvme_path (ZeRO-Infinity).
enum class MemorySpace { kDevice, kHost, kNvme };
const char* MemorySpaceName(MemorySpace space);  // "device", "host", "nvme"

// The arrays of a chunk, in the order a swap file holds them (the gradients last: a step never
// writes them back).
enum class StateArray { kMaster = 0, kM = 1, kV = 2, kGrad = 3 };
inline constexpr int kStateArrays = 4;

// What a store holds: its chunks in state order (the order the optimizer visits them) and the
// bytes per element of each array (0: absent; m and v are always 4).
struct StateLayout {
  struct Chunk {
    size_t unit;   // The engine's unit.
    size_t at;     // First element within the unit's owned elements.
    size_t count;  // Elements.
  };
  std::vector<Chunk> chunks;
  size_t master_bytes = 0;  // 4 with 16-bit working weights.
  size_t grad_bytes = 0;    // The accumulator's element: 4 (fp32), 2 (16-bit) or 0 (stages 0-1).
  DType grad_dtype = DType::kFp32;  // With grad_bytes 2: bf16 or fp16.

  size_t element_bytes(StateArray a) const {
    return a == StateArray::kMaster ? master_bytes : a == StateArray::kGrad ? grad_bytes : 4;
  }
  size_t elements() const;
  size_t bytes(StateArray a) const { return elements() * element_bytes(a); }
};

// Not thread-safe unless stated: one thread at a time (the engine's, or its communication
// stream's for the accumulator while the engine waits on that stream). A store never prints.
class StateStore {
 public:
  // Chunk k's arrays in host memory, layout().chunks[k].count elements each (nullptr where the
  // array is absent). Valid from Acquire(k) to Release(k).
  struct Chunk {
    float* master;
    float* m;
    float* v;
    void* grad;  // The accumulator; zeros since the last ZeroGrads() unless written.
  };

  virtual ~StateStore() = default;
  const StateLayout& layout() const { return layout_; }
  size_t chunks() const { return layout_.chunks.size(); }
  // Chunk k's first element in state order.
  size_t offset(size_t k) const { return offsets_[k]; }
  virtual MemorySpace space() const = 0;

  // Chunk k's array where it lives in memory (writable, valid as long as the store; in memory the
  // chunks of an array are contiguous in state order, so a unit's first chunk addresses all of
  // the unit's elements), or nullptr where it lives elsewhere: then Read / Write copy it.
  virtual void* Data(size_t k, StateArray a) = 0;

  // One optimizer pass: Begin(), then for k = 0, 1, ... in order Acquire(k), step it, Release(k)
  // (written back, masters, m and v, behind the next steps), then Finish(). The first error of any
  // transfer is returned from then on (a store may write behind past Finish: Read and Write wait
  // for those writes; they, the next Begin or Acquire return their error). In memory: the arrays
  // themselves.
  virtual absl::Status Begin() = 0;
  virtual absl::StatusOr<Chunk> Acquire(size_t k) = 0;
  virtual void Release(size_t k) = 0;
  virtual absl::Status Finish() = 0;

  // Outside a pass: one array of chunk k copied out / in (element_bytes x count bytes).
  virtual absl::Status Read(size_t k, StateArray a, void* out) = 0;
  virtual absl::Status Write(size_t k, StateArray a, const void* in) = 0;
  // Every chunk's accumulator reads as zeros from now until it is written. Outside a pass, or
  // after a pass's last Release and before its Finish: then the accumulators need not be written
  // back (the step consumed them).
  virtual void ZeroGrads() = 0;

 protected:
  explicit StateStore(StateLayout layout);

 private:
  StateLayout layout_;
  std::vector<size_t> offsets_;
};

// The state in memory of `allocator`'s kind (every array zero). ResourceExhausted naming the
// space when it does not fit.
absl::StatusOr<std::unique_ptr<StateStore>> CreateMemoryStateStore(StateLayout layout,
                                                                   MemorySpace space,
                                                                   Allocator& allocator);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_STATE_STORE_H_
