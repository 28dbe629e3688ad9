// ParamSwap: one rank's stage-3 parameter shards (the working weights of the units it does not
// keep gathered) in an NvmeSwapper file in its SwapDir (ZeRO-Infinity's offload_param "nvme"):
// one block-aligned region per unit, read when the unit is gathered and written after the step.
#ifndef ZERORUN_RUNTIME_OFFLOAD_PARAM_SWAP_H_
#define ZERORUN_RUNTIME_OFFLOAD_PARAM_SWAP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "offload/nvme_swapper.h"

namespace zerorun {

class ParamSwap {
 public:
  // `bytes[u]`: bytes of unit u's shard on NVMe (0: the unit is not offloaded). Creates the swap
  // file in `dir` (an existing directory). Errors name the path (NvmeSwapper::Create).
  static absl::StatusOr<std::unique_ptr<ParamSwap>> Create(const std::string& dir,
                                                           std::vector<size_t> bytes,
                                                           const AioOptions& aio);
  ~ParamSwap();  // Removes the file.
  ParamSwap(const ParamSwap&) = delete;
  ParamSwap& operator=(const ParamSwap&) = delete;

  bool holds(size_t unit) const { return unit < bytes_.size() && bytes_[unit] > 0; }
  // Unit `unit`'s shard into / from `data` (bytes[unit] bytes, any alignment). Thread-safe
  // (one transfer at a time, through an aligned bounce buffer); blocking.
  absl::Status Read(size_t unit, void* data);
  absl::Status Write(size_t unit, const void* data);

  uint64_t file_bytes() const { return swapper_->bytes(); }
  const std::string& path() const { return swapper_->path(); }
  SwapStats stats() const;

 private:
  ParamSwap(std::unique_ptr<NvmeSwapper> swapper, std::vector<size_t> bytes,
            std::vector<uint64_t> offsets, size_t largest);

  const std::vector<size_t> bytes_;
  const std::vector<uint64_t> offsets_;
  mutable zerorun::Mutex mu_;
  std::unique_ptr<NvmeSwapper> swapper_ ABSL_PT_GUARDED_BY(mu_);
  char* bounce_ ABSL_GUARDED_BY(mu_);
  const size_t bounce_bytes_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_PARAM_SWAP_H_
