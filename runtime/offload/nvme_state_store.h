// NvmeStateStore: the StateStore of ZeRO-Infinity's optimizer offload, one rank's optimizer state
// in an NvmeSwapper file in its SwapDir: per chunk (DeepSpeed's sub-groups) the fp32 masters when
// the working weights are 16-bit, Adam's m and v, and the gradient accumulator at stages 2-3
// (DeepSpeed's four buffers: param, grad, m, v). The chunks pass through a ring of N host buffers
// (N from DeepSpeed's offload_optimizer.buffer_count, at least 3): chunk k + N - 1 is read while k
// is stepped and the chunks before it are written back (pipeline_read / pipeline_write), the
// reads and the writes each on their own thread and io_uring (DeepSpeed's separate aio handles).
// Both run on past the end of a pass: the last chunks are written and the next step's first N - 1
// chunks read during the next forward and backward passes, and the accumulators the backward pass
// writes to the chunks read ahead go to their buffers instead of the disk.
#ifndef ZERORUN_RUNTIME_OFFLOAD_NVME_STATE_STORE_H_
#define ZERORUN_RUNTIME_OFFLOAD_NVME_STATE_STORE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "offload/nvme_swapper.h"
#include "zerorun/state_store.h"

namespace zerorun {

class NvmeStateStore final : public StateStore {
 public:
  // Creates the swap file in `dir` (an existing directory), every array zero. `buffer_count`
  // counts buffers of one array of one chunk, as DeepSpeed's offload_optimizer.buffer_count
  // does: the ring holds max(3, buffer_count / arrays per chunk) chunks. Errors name the path.
  static absl::StatusOr<std::unique_ptr<NvmeStateStore>> Create(const std::string& dir,
                                                                StateLayout layout,
                                                                const AioOptions& aio,
                                                                size_t buffer_count = 4);
  ~NvmeStateStore()
      override;  // Drops the reads ahead, waits for the I/O threads, removes the file.
  NvmeStateStore(const NvmeStateStore&) = delete;
  NvmeStateStore& operator=(const NvmeStateStore&) = delete;

  MemorySpace space() const override { return MemorySpace::kNvme; }
  void* Data(size_t, StateArray) override { return nullptr; }
  // The pass (StateStore's contract) runs reads and writes on their own threads. Finish returns
  // with the last writes still going: Read / Write (outside a pass, from one thread at a time)
  // wait for them (an accumulator's, for the chunk's) and return their first error, as the next
  // Begin or Acquire does; the destructor finishes them (a swap file about to be removed). Read /
  // Write are synchronous through one bounce buffer and keep a chunk already read ahead for the
  // next pass up to date.
  absl::Status Begin() override;
  absl::StatusOr<Chunk> Acquire(size_t k) override;
  void Release(size_t k) override;
  absl::Status Finish() override;  // The first error so far; writes behind and reads ahead go on.
  absl::Status Read(size_t k, StateArray a, void* out) override;
  absl::Status Write(size_t k, StateArray a, const void* in) override;
  void ZeroGrads() override;  // No I/O: unwritten accumulators read as zeros.

  // Blocks until every read queued so far is done (tests: the engine never needs to wait).
  void AwaitReads();
  size_t ring() const { return ring_; }  // Chunk buffers.
  uint64_t buffer_bytes() const;         // The ring's and the bounce buffer's bytes.
  uint64_t file_bytes() const { return swapper_->bytes(); }
  SwapStats stats() const { return swapper_->stats(); }
  const std::string& path() const { return swapper_->path(); }

 private:
  // Where a chunk's accumulator is: zeros (not written since ZeroGrads), in the file, or in the
  // buffer of transfer `grad_at_` (the next pass's, read ahead), written back with the chunk.
  enum class Grad { kZero, kFile, kBuffer };
  // Transfers are numbered across passes: transfer g is chunk g % K of pass g / K, in buffer
  // g % ring_. Reads and writes each complete in order.
  struct Transfer {
    uint64_t g;
    uint64_t bytes;
  };

  NvmeStateStore(std::unique_ptr<NvmeSwapper> swapper, StateLayout layout, size_t ring);
  void Run(bool writer);
  // Waits for chunk k's write of the last pass (every write with SIZE_MAX); the first error.
  absl::Status Settle(size_t k);
  bool ReadReady(const Transfer& t) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadAhead(uint64_t last) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);  // Enqueues up to `last`.
  // The transfer that holds chunk k next: this pass's during a pass, the next one's between.
  uint64_t Next(size_t k) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  char* Slot(uint64_t g) const { return slots_[g % ring_]; }
  uint64_t Region(size_t k, int array) const;  // Bytes, page-aligned (0 where absent).
  uint64_t Within(size_t k, int array) const;  // Offset of the array in chunk k's region.

  std::unique_ptr<NvmeSwapper> swapper_;
  const size_t ring_;
  // Transfers a read runs ahead of its chunk's last write: min(ring_, K) (see ReadReady).
  const uint64_t depth_;
  std::array<size_t, kStateArrays> element_;  // Bytes per element, by StateArray.
  std::vector<size_t> counts_;
  std::vector<uint64_t> offsets_;  // Of chunk k's region in the file.
  std::vector<char*> slots_;       // The ring's chunk buffers, then the bounce buffer.
  uint64_t largest_ = 0;           // Bytes of the largest chunk, of the largest array.
  uint64_t largest_array_ = 0;
  zerorun::Mutex bounce_mu_;  // Read / Write's bounce buffer.
  zerorun::Mutex mu_;
  std::vector<Grad> grad_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> grad_at_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> grad_read_ ABSL_GUARDED_BY(mu_);  // g + 1: read with transfer g.
  std::deque<Transfer> queue_[2] ABSL_GUARDED_BY(mu_);    // To read, to write.
  uint64_t passes_ ABSL_GUARDED_BY(mu_) = 0;              // Begun.
  bool in_pass_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_read_ ABSL_GUARDED_BY(mu_) = 0;  // The next transfer to enqueue for reading.
  uint64_t reads_done_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writes_done_ ABSL_GUARDED_BY(mu_) = 0;
  size_t writes_pending_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reading_ ABSL_GUARDED_BY(mu_) = UINT64_MAX;  // The read in flight.
  size_t held_ ABSL_GUARDED_BY(mu_) = SIZE_MAX;  // A chunk Write() rewrites: not read meanwhile.
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_, writer_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_NVME_STATE_STORE_H_
