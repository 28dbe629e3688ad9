// NvmeStateStore: the three-buffer read / step / write pipeline over an NvmeSwapper file.
#include "offload/nvme_state_store.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace zerorun {
namespace {

constexpr uint64_t kPage = 4096;  // Arrays are page-aligned in the file (NvmeSwapper's CRC unit).

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::unique_ptr<NvmeStateStore>> NvmeStateStore::Create(const std::string& dir,
                                                                       StateLayout layout,
                                                                       const AioOptions& aio) {
  uint64_t total = 0;
  for (const StateLayout::Chunk& c : layout.chunks) {
    for (int a = 0; a < kStateArrays; ++a) {
      const size_t e = layout.element_bytes(static_cast<StateArray>(a));
      total += e == 0 ? 0 : AlignUp(std::max<size_t>(c.count, 1) * e, kPage);
    }
  }
  absl::StatusOr<std::unique_ptr<NvmeSwapper>> swapper =
      NvmeSwapper::Create(dir, "optimizer_state.swap", std::max<uint64_t>(total, 4096), aio);
  if (!swapper.ok()) return swapper.status();
  return std::unique_ptr<NvmeStateStore>(
      new NvmeStateStore(*std::move(swapper), std::move(layout)));
}

NvmeStateStore::NvmeStateStore(std::unique_ptr<NvmeSwapper> swapper, StateLayout layout)
    : StateStore(std::move(layout)), swapper_(std::move(swapper)) {
  for (int a = 0; a < kStateArrays; ++a) {
    element_[static_cast<size_t>(a)] = this->layout().element_bytes(static_cast<StateArray>(a));
  }
  for (const StateLayout::Chunk& c : this->layout().chunks) counts_.push_back(c.count);
  uint64_t total = 0, largest = 0, largest_array = 0;
  for (size_t k = 0; k < counts_.size(); ++k) {
    offsets_.push_back(total);
    const uint64_t chunk = Within(k, kStateArrays);
    total += chunk;
    largest = std::max(largest, chunk);
    for (int a = 0; a < kStateArrays; ++a) largest_array = std::max(largest_array, Region(k, a));
  }
  for (uint64_t bytes : {largest, largest, largest, largest_array}) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, std::max<uint64_t>(bytes, 4096)) != 0) std::abort();
    slots_.push_back(static_cast<char*>(p));
  }
  read_done_.assign(counts_.size(), false);
  {
    zerorun::MutexLock lock(&bounce_mu_);
    grad_written_.assign(counts_.size(), false);
  }
  write_done_.assign(counts_.size(), false);
  reader_ = std::thread([this] { Run(false); });
  writer_ = std::thread([this] { Run(true); });
}

NvmeStateStore::~NvmeStateStore() {
  {
    zerorun::MutexLock lock(&mu_);
    stop_ = true;
  }
  reader_.join();
  writer_.join();
  for (char* slot : slots_) std::free(slot);
}

uint64_t NvmeStateStore::Region(size_t k, int array) const {
  const size_t e = element_[static_cast<size_t>(array)];
  return e == 0 ? 0 : AlignUp(std::max<size_t>(counts_[k], 1) * e, kPage);
}

uint64_t NvmeStateStore::Within(size_t k, int array) const {
  uint64_t at = 0;
  for (int a = 0; a < array; ++a) at += Region(k, a);
  return at;
}

void NvmeStateStore::Run(bool writer) {
  std::deque<size_t>& queue = queue_[writer ? 1 : 0];
  while (true) {
    size_t chunk;
    {
      zerorun::MutexLock lock(&mu_);
      struct Args {
        NvmeStateStore* self;
        std::deque<size_t>* queue;
        bool writer;
      } args{this, &queue, writer};
      // A read into a slot waits for the write of the slot's last chunk (three back).
      mu_.Await(zerorun::Condition(
          +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->self->mu_) {
            if (a->queue->empty()) return a->self->stop_;
            const size_t k = a->queue->front();
            return a->writer || k < 3 || a->self->write_done_[k - 3] || !a->self->error_.ok();
          },
          &args));
      if (queue.empty()) return;  // Stopping with nothing left to do.
      chunk = queue.front();
      queue.pop_front();
    }
    // A chunk's arrays are one transfer, from / into the chunk's slot; the gradients (last) are
    // read, never written back.
    char* slot = Slot(chunk);
    const uint64_t at = offsets_[chunk];
    const absl::Status s =
        writer ? swapper_->Write(at, slot, Within(chunk, static_cast<int>(StateArray::kGrad)))
               : swapper_->Read(at, slot, Within(chunk, kStateArrays));
    zerorun::MutexLock lock(&mu_);
    if (!s.ok() && error_.ok()) error_ = s;
    (writer ? write_done_ : read_done_)[chunk] = true;
    --in_flight_;
  }
}

void NvmeStateStore::Enqueue(bool write, size_t chunk) {
  zerorun::MutexLock lock(&mu_);
  queue_[write ? 1 : 0].push_back(chunk);
  ++in_flight_;
}

absl::Status NvmeStateStore::Begin() {
  {
    zerorun::MutexLock lock(&mu_);
    if (!error_.ok()) return error_;
    std::fill(read_done_.begin(), read_done_.end(), false);
    std::fill(write_done_.begin(), write_done_.end(), false);
  }
  if (!counts_.empty()) Enqueue(false, 0);
  return absl::OkStatus();
}

absl::StatusOr<NvmeStateStore::Chunk> NvmeStateStore::Acquire(size_t k) {
  {
    zerorun::MutexLock lock(&mu_);
    struct Args {
      NvmeStateStore* self;
      size_t k;
    } args{this, k};
    mu_.Await(zerorun::Condition(
        +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->self->mu_) {
          return a->self->read_done_[a->k] || !a->self->error_.ok();
        },
        &args));
    if (!error_.ok()) return error_;
  }
  // Read ahead, into the slot of chunk k - 2 once its write is done (the reader waits for it).
  if (k + 1 < counts_.size()) Enqueue(false, k + 1);
  char* slot = Slot(k);
  auto array = [&](StateArray a) -> char* {
    const int i = static_cast<int>(a);
    return element_[static_cast<size_t>(i)] == 0 ? nullptr : slot + Within(k, i);
  };
  char* grad = array(StateArray::kGrad);
  if (grad != nullptr) {
    zerorun::MutexLock lock(&bounce_mu_);
    if (!grad_written_[k]) std::memset(grad, 0, counts_[k] * element_[kStateArrays - 1]);
  }
  return Chunk{reinterpret_cast<float*>(array(StateArray::kMaster)),
               reinterpret_cast<float*>(array(StateArray::kM)),
               reinterpret_cast<float*>(array(StateArray::kV)), grad};
}

void NvmeStateStore::Release(size_t k) { Enqueue(true, k); }

absl::Status NvmeStateStore::Finish() {
  zerorun::MutexLock lock(&mu_);
  mu_.Await(zerorun::Condition(
      +[](NvmeStateStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->in_flight_ == 0; },
      this));
  return error_;
}

absl::Status NvmeStateStore::Read(size_t k, StateArray array, void* out) {
  const int a = static_cast<int>(array);
  const size_t bytes = counts_[k] * element_[static_cast<size_t>(a)];
  if (bytes == 0) return absl::InternalError("this state store does not hold that array");
  zerorun::MutexLock lock(&bounce_mu_);
  if (array == StateArray::kGrad && !grad_written_[k]) {
    std::memset(out, 0, bytes);
    return absl::OkStatus();
  }
  char* bounce = slots_[3];
  if (absl::Status s = swapper_->Read(offsets_[k] + Within(k, a), bounce, Region(k, a)); !s.ok()) {
    return s;
  }
  std::memcpy(out, bounce, bytes);
  return absl::OkStatus();
}

absl::Status NvmeStateStore::Write(size_t k, StateArray array, const void* in) {
  const int a = static_cast<int>(array);
  const size_t bytes = counts_[k] * element_[static_cast<size_t>(a)];
  if (bytes == 0) return absl::InternalError("this state store does not hold that array");
  zerorun::MutexLock lock(&bounce_mu_);
  char* bounce = slots_[3];
  std::memcpy(bounce, in, bytes);
  std::memset(bounce + bytes, 0, Region(k, a) - bytes);
  absl::Status s = swapper_->Write(offsets_[k] + Within(k, a), bounce, Region(k, a));
  if (s.ok() && array == StateArray::kGrad) grad_written_[k] = true;
  return s;
}

void NvmeStateStore::ZeroGrads() {
  zerorun::MutexLock lock(&bounce_mu_);
  std::fill(grad_written_.begin(), grad_written_.end(), false);
}

}  // namespace zerorun
