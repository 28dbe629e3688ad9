// OptimizerSwap: one rank's optimizer state (Adam m and v, and the fp32 masters when the working
// weights are 16-bit) in an NvmeSwapper file in its SwapDir (ZeRO-Infinity's optimizer offload),
// swapped through three host buffers chunk by chunk (DeepSpeed's sub-groups) during the step:
// chunk k+1 is read while k is stepped and k-1 written back (pipeline_read / pipeline_write).
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
  // `chunks`: element counts of the chunks in the order the optimizer visits them; with
  // `masters` each chunk holds masters, m and v, else m and v. Creates the swap file in `dir`
  // (an existing directory), every array zero. Errors name the path (NvmeSwapper::Create).
  static absl::StatusOr<std::unique_ptr<OptimizerSwap>> Create(const std::string& dir, bool masters,
                                                               std::vector<size_t> chunks,
                                                               const AioOptions& aio);
  ~OptimizerSwap();  // Waits for the I/O thread; removes the file.
  OptimizerSwap(const OptimizerSwap&) = delete;
  OptimizerSwap& operator=(const OptimizerSwap&) = delete;

  // Chunk k's arrays in host memory, count elements each (master nullptr without masters).
  struct Chunk {
    float* master;
    float* m;
    float* v;
  };
  // One optimizer pass: Begin(), then for k = 0, 1, ... in order Acquire(k), step, Release(k)
  // (written back behind the next steps), then Finish() (every write done). The first error of
  // any transfer is returned from then on.
  absl::Status Begin();
  absl::StatusOr<Chunk> Acquire(size_t k);
  void Release(size_t k);
  absl::Status Finish();
  // Outside a pass: chunk k's masters, synchronously (set-up, restore, SetTensor, GetTensor).
  absl::Status ReadMasters(size_t k, float* out);
  absl::Status WriteMasters(size_t k, const float* in);

  size_t chunks() const { return counts_.size(); }
  uint64_t file_bytes() const { return swapper_->bytes(); }
  const SwapStats& stats() const { return swapper_->stats(); }
  const std::string& path() const { return swapper_->path(); }

 private:
  struct Op {
    bool write;
    size_t chunk;
  };
  OptimizerSwap(std::unique_ptr<NvmeSwapper> swapper, int arrays, std::vector<size_t> counts,
                std::vector<uint64_t> offsets, std::vector<uint64_t> regions, size_t slot_bytes);
  void Run();
  void Enqueue(Op op);
  char* Slot(size_t k) { return slots_[k % 3]; }

  std::unique_ptr<NvmeSwapper> swapper_;
  const int arrays_;  // 3: masters, m, v; 2: m, v.
  const std::vector<size_t> counts_;
  const std::vector<uint64_t> offsets_;  // Of chunk k's region ([masters,] m, v) in the file.
  const std::vector<uint64_t> regions_;  // Bytes of each array there, block-aligned.
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
