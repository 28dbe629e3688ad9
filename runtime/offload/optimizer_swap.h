// OptimizerSwap: one rank's Adam m and v in an NvmeSwapper file under
// <nvme_path>/zerorun-<tag>/ (ZeRO-Infinity's optimizer offload), swapped through three host
// buffers chunk by chunk (DeepSpeed's sub-groups) during the optimizer step: chunk k+1 is read
// while k is stepped and k-1 written back (pipeline_read / pipeline_write), on one I/O thread.
#ifndef ZERORUN_RUNTIME_OFFLOAD_OPTIMIZER_SWAP_H_
#define ZERORUN_RUNTIME_OFFLOAD_OPTIMIZER_SWAP_H_

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
#include "absl/synchronization/mutex.h"
#include "offload/nvme_swapper.h"

namespace zerorun {

class OptimizerSwap {
 public:
  // `chunks`: element counts of the chunks in the order the optimizer visits them. Creates
  // <nvme_path>/zerorun-<tag>/ (nvme_path itself must exist) and the swap file there, m and v
  // zero. Errors name the path (NvmeSwapper::Create).
  static absl::StatusOr<std::unique_ptr<OptimizerSwap>> Create(const std::string& nvme_path,
                                                               const std::string& tag,
                                                               std::vector<size_t> chunks,
                                                               const AioOptions& aio);
  ~OptimizerSwap();  // Waits for the I/O thread; removes the file and the directory.
  OptimizerSwap(const OptimizerSwap&) = delete;
  OptimizerSwap& operator=(const OptimizerSwap&) = delete;

  // One optimizer pass: Begin(), then for k = 0, 1, ... in order Acquire(k) (chunk k's m and v in
  // host memory, count elements each), step, Release(k) (written back behind the next steps),
  // then Finish() (every write done). The first error of any transfer is returned from then on.
  absl::Status Begin();
  absl::StatusOr<std::pair<float*, float*>> Acquire(size_t k);
  void Release(size_t k);
  absl::Status Finish();

  size_t chunks() const { return counts_.size(); }
  uint64_t file_bytes() const { return swapper_->bytes(); }
  const SwapStats& stats() const { return swapper_->stats(); }
  const std::string& dir() const { return dir_; }

 private:
  struct Op {
    bool write;
    size_t chunk;
  };
  OptimizerSwap(std::string dir, std::unique_ptr<NvmeSwapper> swapper, std::vector<size_t> counts,
                std::vector<uint64_t> offsets, std::vector<uint64_t> regions, size_t slot_bytes);
  void Run();
  void Enqueue(Op op);
  char* Slot(size_t k) { return slots_[k % 3]; }

  const std::string dir_;
  std::unique_ptr<NvmeSwapper> swapper_;
  const std::vector<size_t> counts_;
  const std::vector<uint64_t> offsets_;  // Of chunk k's region (m, then v) in the file.
  const std::vector<uint64_t> regions_;  // Bytes of each of m and v there, block-aligned.
  std::vector<char*> slots_;
  absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<bool> read_done_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread io_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_OPTIMIZER_SWAP_H_
