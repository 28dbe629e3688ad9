// NvmeStateStore: the StateStore of ZeRO-Infinity's optimizer offload, one rank's optimizer state
// in an NvmeSwapper file in its SwapDir: per chunk (DeepSpeed's sub-groups) the fp32 masters when
// the working weights are 16-bit, Adam's m and v, and the gradient accumulator at stages 2-3
// (DeepSpeed's four buffers: param, grad, m, v). During the step the chunks pass through three host
// buffers: k+1 is read while k is stepped and k-1 written back (pipeline_read / pipeline_write),
// the reads and the writes each on their own thread and io_uring (DeepSpeed's separate aio
// handles).
#ifndef ZERORUN_RUNTIME_OFFLOAD_NVME_STATE_STORE_H_
#define ZERORUN_RUNTIME_OFFLOAD_NVME_STATE_STORE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "offload/nvme_swapper.h"
#include "zerorun/state_store.h"

namespace zerorun {

class NvmeStateStore final : public StateStore {
 public:
  // Creates the swap file in `dir` (an existing directory), every array zero. Errors name the
  // path.
  static absl::StatusOr<std::unique_ptr<NvmeStateStore>> Create(const std::string& dir,
                                                                StateLayout layout,
                                                                const AioOptions& aio);
  ~NvmeStateStore() override;  // Waits for the I/O threads; removes the file.
  NvmeStateStore(const NvmeStateStore&) = delete;
  NvmeStateStore& operator=(const NvmeStateStore&) = delete;

  MemorySpace space() const override { return MemorySpace::kNvme; }
  void* Data(size_t, StateArray) override { return nullptr; }
  // The pass (StateStore's contract) runs reads and writes on their own threads; Read / Write
  // (outside a pass) are synchronous through one bounce buffer, from any one thread at a time.
  absl::Status Begin() override;
  absl::StatusOr<Chunk> Acquire(size_t k) override;
  void Release(size_t k) override;
  absl::Status Finish() override;
  absl::Status Read(size_t k, StateArray a, void* out) override;
  absl::Status Write(size_t k, StateArray a, const void* in) override;
  void ZeroGrads() override;  // No I/O: unwritten accumulators read as zeros.

  uint64_t file_bytes() const { return swapper_->bytes(); }
  SwapStats stats() const { return swapper_->stats(); }
  const std::string& path() const { return swapper_->path(); }

 private:
  NvmeStateStore(std::unique_ptr<NvmeSwapper> swapper, StateLayout layout);
  void Run(bool writer);
  void Enqueue(bool write, size_t chunk);
  char* Slot(size_t k) { return slots_[k % 3]; }
  uint64_t Region(size_t k, int array) const;  // Bytes, page-aligned (0 where absent).
  uint64_t Within(size_t k, int array) const;  // Offset of the array in chunk k's region.

  std::unique_ptr<NvmeSwapper> swapper_;
  std::array<size_t, kStateArrays> element_;  // Bytes per element, by StateArray.
  std::vector<size_t> counts_;
  std::vector<uint64_t> offsets_;  // Of chunk k's region in the file.
  std::vector<char*> slots_;       // Three chunk buffers, then the bounce buffer of ReadArray.
  zerorun::Mutex bounce_mu_;       // Read / Write's bounce buffer.
  // Chunks whose accumulator was written since ZeroGrads(); the others read as zeros.
  std::vector<bool> grad_written_ ABSL_GUARDED_BY(bounce_mu_);
  zerorun::Mutex mu_;
  std::deque<size_t> queue_[2] ABSL_GUARDED_BY(mu_);  // Chunks to read, to write.
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<bool> read_done_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> write_done_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_, writer_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_NVME_STATE_STORE_H_
