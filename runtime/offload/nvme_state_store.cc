// NvmeStateStore: the ring of chunk buffers over an NvmeSwapper file: reads ahead across passes,
// writes behind, accumulators of chunks already read ahead kept in their buffers.
#include "offload/nvme_state_store.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace zerorun {
namespace {

constexpr uint64_t kPage = 4096;  // Arrays are page-aligned in the file (NvmeSwapper's CRC unit).
constexpr int kGradArray = static_cast<int>(StateArray::kGrad);

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace

absl::StatusOr<std::unique_ptr<NvmeStateStore>> NvmeStateStore::Create(const std::string& dir,
                                                                       StateLayout layout,
                                                                       const AioOptions& aio,
                                                                       size_t buffer_count) {
  uint64_t total = 0;
  size_t arrays = 0;
  for (int a = 0; a < kStateArrays; ++a) {
    if (layout.element_bytes(static_cast<StateArray>(a)) != 0) ++arrays;
  }
  for (const StateLayout::Chunk& c : layout.chunks) {
    for (int a = 0; a < kStateArrays; ++a) {
      const size_t e = layout.element_bytes(static_cast<StateArray>(a));
      total += e == 0 ? 0 : AlignUp(std::max<size_t>(c.count, 1) * e, kPage);
    }
  }
  absl::StatusOr<std::unique_ptr<NvmeSwapper>> swapper =
      NvmeSwapper::Create(dir, "optimizer_state.swap", std::max<uint64_t>(total, 4096), aio);
  if (!swapper.ok()) return swapper.status();
  // More buffers than chunks would hold chunks twice.
  const size_t ring = std::max<size_t>(3, std::min(buffer_count / arrays, layout.chunks.size()));
  return std::unique_ptr<NvmeStateStore>(
      new NvmeStateStore(*std::move(swapper), std::move(layout), ring));
}

NvmeStateStore::NvmeStateStore(std::unique_ptr<NvmeSwapper> swapper, StateLayout layout,
                               size_t ring)
    : StateStore(std::move(layout)),
      swapper_(std::move(swapper)),
      ring_(ring),
      depth_(std::min<uint64_t>(ring, this->layout().chunks.size())) {
  for (int a = 0; a < kStateArrays; ++a) {
    element_[static_cast<size_t>(a)] = this->layout().element_bytes(static_cast<StateArray>(a));
  }
  for (const StateLayout::Chunk& c : this->layout().chunks) counts_.push_back(c.count);
  uint64_t total = 0;
  for (size_t k = 0; k < counts_.size(); ++k) {
    offsets_.push_back(total);
    const uint64_t chunk = Within(k, kStateArrays);
    total += chunk;
    largest_ = std::max(largest_, chunk);
    for (int a = 0; a < kStateArrays; ++a) largest_array_ = std::max(largest_array_, Region(k, a));
  }
  for (size_t i = 0; i <= ring_; ++i) {
    const uint64_t bytes = std::max<uint64_t>(i < ring_ ? largest_ : largest_array_, kPage);
    void* p = nullptr;
    if (posix_memalign(&p, kPage, bytes) != 0) std::abort();
    slots_.push_back(static_cast<char*>(p));
  }
  {
    zerorun::MutexLock lock(&mu_);
    grad_.assign(counts_.size(), Grad::kZero);
    grad_at_.assign(counts_.size(), 0);
    grad_read_.assign(counts_.size(), 0);
  }
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

uint64_t NvmeStateStore::buffer_bytes() const {
  return ring_ * std::max<uint64_t>(largest_, kPage) + std::max<uint64_t>(largest_array_, kPage);
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

uint64_t NvmeStateStore::Next(size_t k) const {
  return (in_pass_ ? passes_ - 1 : passes_) * counts_.size() + k;
}

bool NvmeStateStore::ReadReady(const Transfer& t) const {
  // Transfer g reads what transfer g - K wrote, into the buffer transfer g - ring_ used: with
  // ring_ <= K the later of the two is g - ring_ (writes complete in order).
  return (t.g < depth_ || writes_done_ > t.g - depth_) && t.g % counts_.size() != held_;
}

void NvmeStateStore::ReadAhead(uint64_t last) {
  for (; next_read_ <= last; ++next_read_) queue_[0].push_back({next_read_, 0});
}

void NvmeStateStore::Run(bool writer) {
  std::deque<Transfer>& queue = queue_[writer ? 1 : 0];
  const size_t chunks = counts_.size();
  while (true) {
    Transfer t;
    bool skip;  // After an error: no more I/O, each transfer only counted done.
    {
      zerorun::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (writer) return stop_ || !queue.empty();
        return stop_ || (!queue.empty() && (!error_.ok() || ReadReady(queue.front())));
      };
      mu_.Await(zerorun::Condition(&ready));
      // The reader drops the reads ahead of a pass that will not come; the writer drains.
      if (writer ? queue.empty() : stop_) return;
      t = queue.front();
      queue.pop_front();
      skip = !error_.ok();
      if (writer) {
        // Masters, m and v go back; an accumulator held in the buffer goes with them unless
        // ZeroGrads dropped it since the chunk's Release.
        const size_t k = t.g % chunks;
        const bool grads = grad_[k] == Grad::kBuffer && grad_at_[k] == t.g;
        t.bytes = Within(k, grads ? kStateArrays : kGradArray);
        if (grads) grad_[k] = Grad::kFile;
      } else {
        // Masters, m and v; the accumulator too where the file holds it (Write() keeps it from
        // moving there while this read is in flight).
        // A read for a pass not begun yet leaves the accumulator out: ZeroGrads or the backward
        // pass will replace it (Acquire reads it from the file where neither did).
        const size_t k = t.g % chunks;
        const bool grads = grad_[k] == Grad::kFile && t.g / chunks < passes_;
        t.bytes = Within(k, grads ? kStateArrays : kGradArray);
        grad_read_[k] = grads ? t.g + 1 : 0;
        reading_ = t.g;
      }
    }
    const size_t k = t.g % chunks;
    absl::Status s;
    if (!skip) {
      s = writer ? swapper_->Write(offsets_[k], Slot(t.g), t.bytes)
                 : swapper_->Read(offsets_[k], Slot(t.g), t.bytes);
    }
    zerorun::MutexLock lock(&mu_);
    if (!s.ok() && error_.ok()) error_ = s;
    if (writer) {
      writes_done_ = t.g + 1;
      --writes_pending_;
    } else {
      reads_done_ = t.g + 1;
      reading_ = UINT64_MAX;
    }
  }
}

absl::Status NvmeStateStore::Begin() {
  zerorun::MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  ++passes_;
  in_pass_ = true;
  if (!counts_.empty()) {
    ReadAhead(Next(0) + depth_ - 1);
  }
  return absl::OkStatus();
}

absl::StatusOr<NvmeStateStore::Chunk> NvmeStateStore::Acquire(size_t k) {
  char* slot;
  bool zero_grads = false, read_grads = false;
  {
    zerorun::MutexLock lock(&mu_);
    const uint64_t g = Next(k);
    auto read = [&]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reads_done_ > g || !error_.ok(); };
    mu_.Await(zerorun::Condition(&read));
    if (!error_.ok()) return error_;
    // Read ahead into the buffers the chunks before this one leave once written, on into the
    // next pass (the reader waits for those writes).
    ReadAhead(g + depth_ - 1);
    slot = Slot(g);
    if (element_[kGradArray] != 0) {
      zero_grads = grad_[k] == Grad::kZero;
      read_grads = grad_[k] == Grad::kFile && grad_read_[k] != g + 1;
    }
  }
  auto array = [&](StateArray a) -> char* {
    const int i = static_cast<int>(a);
    return element_[static_cast<size_t>(i)] == 0 ? nullptr : slot + Within(k, i);
  };
  char* grad = array(StateArray::kGrad);
  if (zero_grads) std::memset(grad, 0, counts_[k] * element_[kGradArray]);
  if (read_grads) {  // Written to the file after this chunk was read ahead.
    absl::Status s =
        swapper_->Read(offsets_[k] + Within(k, kGradArray), grad, Region(k, kGradArray));
    if (!s.ok()) return s;
  }
  return Chunk{reinterpret_cast<float*>(array(StateArray::kMaster)),
               reinterpret_cast<float*>(array(StateArray::kM)),
               reinterpret_cast<float*>(array(StateArray::kV)), grad};
}

void NvmeStateStore::Release(size_t k) {
  zerorun::MutexLock lock(&mu_);
  queue_[1].push_back({Next(k), 0});  // The writer sizes it (Run).
  ++writes_pending_;
}

void NvmeStateStore::AwaitReads() {
  zerorun::MutexLock lock(&mu_);
  auto read = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return reads_done_ >= next_read_ || !error_.ok();
  };
  mu_.Await(zerorun::Condition(&read));
}

absl::Status NvmeStateStore::Finish() {
  zerorun::MutexLock lock(&mu_);
  in_pass_ = false;
  return error_;
}

absl::Status NvmeStateStore::Settle(size_t k) {
  zerorun::MutexLock lock(&mu_);
  const uint64_t chunks = counts_.size();
  auto written = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (k == SIZE_MAX || passes_ == 0) return writes_pending_ == 0;
    return writes_done_ > Next(k) - chunks;  // Chunk k's write of the last pass.
  };
  mu_.Await(zerorun::Condition(&written));
  return error_;
}

absl::Status NvmeStateStore::Read(size_t k, StateArray array, void* out) {
  const int a = static_cast<int>(array);
  const size_t bytes = counts_[k] * element_[static_cast<size_t>(a)];
  if (bytes == 0) return absl::InternalError("this state store does not hold that array");
  if (absl::Status s = Settle(array == StateArray::kGrad ? k : SIZE_MAX); !s.ok()) return s;
  if (array == StateArray::kGrad) {
    zerorun::MutexLock lock(&mu_);
    if (grad_[k] == Grad::kZero) {
      std::memset(out, 0, bytes);
      return absl::OkStatus();
    }
    if (grad_[k] == Grad::kBuffer) {
      std::memcpy(out, Slot(grad_at_[k]) + Within(k, a), bytes);
      return absl::OkStatus();
    }
  }
  // The file holds the rest (Settle: the last pass's writes of the chunk are done).
  zerorun::MutexLock lock(&bounce_mu_);
  char* bounce = slots_[ring_];
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
  if (absl::Status s = Settle(array == StateArray::kGrad ? k : SIZE_MAX); !s.ok()) return s;
  uint64_t g;
  {
    zerorun::MutexLock lock(&mu_);
    g = Next(k);
    auto idle = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reading_ != g; };
    mu_.Await(zerorun::Condition(&idle));
    if (array == StateArray::kGrad && reads_done_ > g) {
      // Read ahead for the next pass: the accumulator stays in the chunk's buffer.
      std::memcpy(Slot(g) + Within(k, a), in, bytes);
      grad_[k] = Grad::kBuffer;
      grad_at_[k] = g;
      return absl::OkStatus();
    }
    held_ = k;  // The reader does not start on this chunk until the file has the new values.
  }
  absl::Status s;
  {
    zerorun::MutexLock lock(&bounce_mu_);
    char* bounce = slots_[ring_];
    std::memcpy(bounce, in, bytes);
    std::memset(bounce + bytes, 0, Region(k, a) - bytes);
    s = swapper_->Write(offsets_[k] + Within(k, a), bounce, Region(k, a));
  }
  zerorun::MutexLock lock(&mu_);
  held_ = SIZE_MAX;
  if (!s.ok()) return s;
  if (array == StateArray::kGrad) {
    grad_[k] = Grad::kFile;
  } else if (reads_done_ > g) {
    std::memcpy(Slot(g) + Within(k, a), in, bytes);  // Read ahead already: keep it current.
  }
  return absl::OkStatus();
}

void NvmeStateStore::ZeroGrads() {
  zerorun::MutexLock lock(&mu_);
  std::fill(grad_.begin(), grad_.end(), Grad::kZero);
}

}  // namespace zerorun
