// OptimizerSwap: the three-buffer read / step / write pipeline over an NvmeSwapper file.
#include "offload/optimizer_swap.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun {
namespace {

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::unique_ptr<OptimizerSwap>> OptimizerSwap::Create(const std::string& nvme_path,
                                                                     const std::string& tag,
                                                                     std::vector<size_t> chunks,
                                                                     const AioOptions& aio) {
  const std::string dir = absl::StrCat(nvme_path, "/zerorun-", tag);
  if (mkdir(dir.c_str(), 0700) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {  // nvme_path itself is never created.
      return absl::NotFoundError(absl::StrCat("offload_optimizer.nvme_path ", nvme_path,
                                              " is not an existing directory. Fix: create it or "
                                              "name another"));
    }
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", strerror(errno),
                                                    " (another run with this job id and rank?)"));
  }
  std::vector<uint64_t> offsets, regions;
  uint64_t total = 0, largest = 0;
  for (size_t count : chunks) {
    const uint64_t region = AlignUp(std::max<uint64_t>(count, 1) * sizeof(float), aio.block_size);
    offsets.push_back(total);
    regions.push_back(region);
    total += 2 * region;
    largest = std::max(largest, region);
  }
  absl::StatusOr<std::unique_ptr<NvmeSwapper>> swapper =
      NvmeSwapper::Create(dir, "optimizer_state.swap", std::max<uint64_t>(total, 4096), aio);
  if (!swapper.ok()) {
    rmdir(dir.c_str());
    return swapper.status();
  }
  return std::unique_ptr<OptimizerSwap>(new OptimizerSwap(dir, *std::move(swapper),
                                                          std::move(chunks), std::move(offsets),
                                                          std::move(regions), 2 * largest));
}

OptimizerSwap::OptimizerSwap(std::string dir, std::unique_ptr<NvmeSwapper> swapper,
                             std::vector<size_t> counts, std::vector<uint64_t> offsets,
                             std::vector<uint64_t> regions, size_t slot_bytes)
    : dir_(std::move(dir)),
      swapper_(std::move(swapper)),
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
  swapper_.reset();  // Removes the file.
  rmdir(dir_.c_str());
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
    // m and v of a chunk are one transfer each, from / into the chunk's slot.
    char* slot = Slot(op.chunk);
    const uint64_t at = offsets_[op.chunk], region = regions_[op.chunk];
    absl::Status s =
        op.write ? swapper_->Write(at, slot, 2 * region) : swapper_->Read(at, slot, 2 * region);
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

absl::StatusOr<std::pair<float*, float*>> OptimizerSwap::Acquire(size_t k) {
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
  return std::make_pair(reinterpret_cast<float*>(slot),
                        reinterpret_cast<float*>(slot + regions_[k]));
}

void OptimizerSwap::Release(size_t k) { Enqueue({true, k}); }

absl::Status OptimizerSwap::Finish() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](OptimizerSwap* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->in_flight_ == 0; },
      this));
  return error_;
}

}  // namespace zerorun
