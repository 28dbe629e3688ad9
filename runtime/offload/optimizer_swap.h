// OptimizerSwap: one rank's optimizer state in an NvmeSwapper file in its SwapDir (ZeRO-Infinity's
// optimizer offload): per chunk (DeepSpeed's sub-groups) Adam's m and v, the fp32 masters when the
// working weights are 16-bit, and the gradient accumulator at stages 2-3 (DeepSpeed's four
// buffers: param, grad, m, v). During the step the chunks pass through three host buffers: k+1
// is read while k is stepped and k-1 written back (pipeline_read / pipeline_write), the reads
// and the writes each on their own thread and io_uring (DeepSpeed's separate aio handles).
#ifndef ZERORUN_RUNTIME_OFFLOAD_OPTIMIZER_SWAP_H_
#define ZERORUN_RUNTIME_OFFLOAD_OPTIMIZER_SWAP_H_

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

namespace zerorun {

// The arrays of a chunk, in file order (the gradients last: a step never writes them back).
enum class SwapArray { kMaster = 0, kM = 1, kV = 2, kGrad = 3 };

class OptimizerSwap {
 public:
  // Bytes per element of each array; 0 for an absent one (m and v are always 4).
  struct Arrays {
    size_t master = 0;  // 4 with 16-bit working weights.
    size_t grad = 0;    // The accumulator's element: 4 (fp32) or 2 (16-bit).
  };
  // `chunks`: element counts of the chunks in the order the optimizer visits them. Creates the
  // swap file in `dir` (an existing directory), every array zero. Errors name the path.
  static absl::StatusOr<std::unique_ptr<OptimizerSwap>> Create(const std::string& dir,
                                                               Arrays arrays,
                                                               std::vector<size_t> chunks,
                                                               const AioOptions& aio);
  ~OptimizerSwap();  // Waits for the I/O thread; removes the file.
  OptimizerSwap(const OptimizerSwap&) = delete;
  OptimizerSwap& operator=(const OptimizerSwap&) = delete;

  // Chunk k's arrays in host memory, count elements each (nullptr where absent).
  struct Chunk {
    float* master;
    float* m;
    float* v;
    void* grad;
  };
  // One optimizer pass: Begin(), then for k = 0, 1, ... in order Acquire(k), step, Release(k)
  // (masters, m and v written back behind the next steps), then Finish() (every write done).
  // The first error of any transfer is returned from then on.
  absl::Status Begin();
  absl::StatusOr<Chunk> Acquire(size_t k);
  void Release(size_t k);
  absl::Status Finish();
  // Outside a pass, from any one thread at a time: one array of chunk k, synchronously (set-up,
  // SetTensor / GetTensor, the gradient accumulation, the norm).
  absl::Status ReadArray(size_t k, SwapArray array, void* out);
  absl::Status WriteArray(size_t k, SwapArray array, const void* in);

  size_t chunks() const { return counts_.size(); }
  uint64_t file_bytes() const { return swapper_->bytes(); }
  SwapStats stats() const { return swapper_->stats(); }
  const std::string& path() const { return swapper_->path(); }

 private:
  OptimizerSwap(std::unique_ptr<NvmeSwapper> swapper, std::array<size_t, 4> element,
                std::vector<size_t> counts);
  void Run(bool writer);
  void Enqueue(bool write, size_t chunk);
  char* Slot(size_t k) { return slots_[k % 3]; }
  uint64_t Region(size_t k, int array) const;  // Bytes, page-aligned (0 where absent).
  uint64_t Within(size_t k, int array) const;  // Offset of the array in chunk k's region.

  std::unique_ptr<NvmeSwapper> swapper_;
  const std::array<size_t, 4> element_;  // Bytes per element, by SwapArray.
  const std::vector<size_t> counts_;
  std::vector<uint64_t> offsets_;  // Of chunk k's region in the file.
  std::vector<char*> slots_;       // Three chunk buffers, then the bounce buffer of ReadArray.
  zerorun::Mutex bounce_mu_;       // ReadArray / WriteArray's bounce buffer.
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

#endif  // ZERORUN_RUNTIME_OFFLOAD_OPTIMIZER_SWAP_H_
