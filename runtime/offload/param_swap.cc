// ParamSwap: per-unit regions of a parameter swap file, moved through one aligned bounce buffer.
#include "offload/param_swap.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace zerorun {
namespace {

constexpr uint64_t kAlign = 4096;

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::unique_ptr<ParamSwap>> ParamSwap::Create(const std::string& dir,
                                                             std::vector<size_t> bytes,
                                                             const AioOptions& aio) {
  std::vector<uint64_t> offsets;
  uint64_t total = 0, largest = 0;
  for (size_t n : bytes) {
    offsets.push_back(total);
    total += AlignUp(n, kAlign);
    largest = std::max(largest, AlignUp(n, kAlign));
  }
  absl::StatusOr<std::unique_ptr<NvmeSwapper>> swapper =
      NvmeSwapper::Create(dir, "params.swap", std::max<uint64_t>(total, kAlign), aio);
  if (!swapper.ok()) return swapper.status();
  return std::unique_ptr<ParamSwap>(
      new ParamSwap(*std::move(swapper), std::move(bytes), std::move(offsets), largest));
}

ParamSwap::ParamSwap(std::unique_ptr<NvmeSwapper> swapper, std::vector<size_t> bytes,
                     std::vector<uint64_t> offsets, size_t largest)
    : bytes_(std::move(bytes)),
      offsets_(std::move(offsets)),
      swapper_(std::move(swapper)),
      bounce_bytes_(std::max<size_t>(largest, kAlign)) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, bounce_bytes_) != 0) std::abort();
  bounce_ = static_cast<char*>(p);
}

ParamSwap::~ParamSwap() {
  zerorun::MutexLock lock(&mu_);
  std::free(bounce_);
  swapper_.reset();
}

absl::Status ParamSwap::Read(size_t unit, void* data) {
  zerorun::MutexLock lock(&mu_);
  const size_t n = AlignUp(bytes_[unit], kAlign);
  if (absl::Status s = swapper_->Read(offsets_[unit], bounce_, n); !s.ok()) return s;
  std::memcpy(data, bounce_, bytes_[unit]);
  return absl::OkStatus();
}

absl::Status ParamSwap::Write(size_t unit, const void* data) {
  zerorun::MutexLock lock(&mu_);
  const size_t n = AlignUp(bytes_[unit], kAlign);
  std::memcpy(bounce_, data, bytes_[unit]);
  std::memset(bounce_ + bytes_[unit], 0, n - bytes_[unit]);
  return swapper_->Write(offsets_[unit], bounce_, n);
}

SwapStats ParamSwap::stats() const {
  zerorun::MutexLock lock(&mu_);
  return swapper_->stats();
}

}  // namespace zerorun
