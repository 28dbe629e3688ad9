// OptimizerSwap: the three-buffer read / step / write pipeline over an NvmeSwapper file.
#include "offload/optimizer_swap.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun {
namespace {

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::unique_ptr<OptimizerSwap>> OptimizerSwap::Create(const std::string& dir,
                                                                     bool masters,
                                                                     std::vector<size_t> chunks,
                                                                     const AioOptions& aio) {
  const int arrays = masters ? 3 : 2;
  std::vector<uint64_t> offsets, regions;
  uint64_t total = 0, largest = 0;
  for (size_t count : chunks) {
    const uint64_t region = AlignUp(std::max<uint64_t>(count, 1) * sizeof(float), aio.block_size);
    offsets.push_back(total);
    regions.push_back(region);
    total += arrays * region;
    largest = std::max(largest, region);
  }
  absl::StatusOr<std::unique_ptr<NvmeSwapper>> swapper =
      NvmeSwapper::Create(dir, "optimizer_state.swap", std::max<uint64_t>(total, 4096), aio);
  if (!swapper.ok()) return swapper.status();
  return std::unique_ptr<OptimizerSwap>(new OptimizerSwap(*std::move(swapper), arrays,
                                                          std::move(chunks), std::move(offsets),
                                                          std::move(regions), arrays * largest));
}

OptimizerSwap::OptimizerSwap(std::unique_ptr<NvmeSwapper> swapper, int arrays,
                             std::vector<size_t> counts, std::vector<uint64_t> offsets,
                             std::vector<uint64_t> regions, size_t slot_bytes)
    : swapper_(std::move(swapper)),
      arrays_(arrays),
      counts_(std::move(counts)),
      offsets_(std::move(offsets)),
      regions_(std::move(regions)) {
  for (int i = 0; i < 3; ++i) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, std::max<size_t>(slot_bytes, 4096)) != 0) std::abort();
    slots_.push_back(static_cast<char*>(p));
  }
  read_done_.assign(counts_.size(), false);
  io_ = std::thread([this] { Run(); });
}

OptimizerSwap::~OptimizerSwap() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  io_.join();
  for (char* slot : slots_) std::free(slot);
}

void OptimizerSwap::Run() {
  while (true) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](OptimizerSwap* s)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->stop_ || !s->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // Stopping with nothing left to do.
      op = queue_.front();
      queue_.pop_front();
    }
    // A chunk's arrays are one transfer, from / into the chunk's slot.
    char* slot = Slot(op.chunk);
    const uint64_t at = offsets_[op.chunk], n = arrays_ * regions_[op.chunk];
    absl::Status s = op.write ? swapper_->Write(at, slot, n) : swapper_->Read(at, slot, n);
    absl::MutexLock lock(&mu_);
    if (!s.ok() && error_.ok()) error_ = s;
    if (!op.write) read_done_[op.chunk] = true;
    --in_flight_;
  }
}

void OptimizerSwap::Enqueue(Op op) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(op);
  ++in_flight_;
}

absl::Status OptimizerSwap::Begin() {
  {
    absl::MutexLock lock(&mu_);
    if (!error_.ok()) return error_;
    std::fill(read_done_.begin(), read_done_.end(), false);
  }
  if (!counts_.empty()) Enqueue({false, 0});
  return absl::OkStatus();
}

absl::StatusOr<OptimizerSwap::Chunk> OptimizerSwap::Acquire(size_t k) {
  {
    absl::MutexLock lock(&mu_);
    struct Args {
      OptimizerSwap* self;
      size_t k;
    } args{this, k};
    mu_.Await(absl::Condition(
        +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->self->mu_) {
          return a->self->read_done_[a->k] || !a->self->error_.ok();
        },
        &args));
    if (!error_.ok()) return error_;
  }
  // Read ahead: its slot's last user (chunk k - 2) was queued for writing before this read.
  if (k + 1 < counts_.size()) Enqueue({false, k + 1});
  char* slot = Slot(k);
  auto array = [&](int i) { return reinterpret_cast<float*>(slot + i * regions_[k]); };
  return arrays_ == 3 ? Chunk{array(0), array(1), array(2)} : Chunk{nullptr, array(0), array(1)};
}

void OptimizerSwap::Release(size_t k) { Enqueue({true, k}); }

absl::Status OptimizerSwap::Finish() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](OptimizerSwap* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->in_flight_ == 0; },
      this));
  return error_;
}

absl::Status OptimizerSwap::ReadMasters(size_t k, float* out) {
  if (arrays_ != 3) return absl::InternalError("this optimizer swap holds no masters");
  if (absl::Status s = swapper_->Read(offsets_[k], slots_[0], regions_[k]); !s.ok()) return s;
  std::memcpy(out, slots_[0], counts_[k] * sizeof(float));
  return absl::OkStatus();
}

absl::Status OptimizerSwap::WriteMasters(size_t k, const float* in) {
  if (arrays_ != 3) return absl::InternalError("this optimizer swap holds no masters");
  std::memset(slots_[0], 0, regions_[k]);
  std::memcpy(slots_[0], in, counts_[k] * sizeof(float));
  return swapper_->Write(offsets_[k], slots_[0], regions_[k]);
}

}  // namespace zerorun
