// The CPU implementation of the device layer: aligned host allocations with accounting, events
// as shared completion flags, and streams as one ordered executor thread (or inline).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/mutex.h"
#include "zerorun/device.h"

namespace zerorun {

std::string Device::ToString() const {
  return kind == DeviceKind::kCpu ? "cpu" : absl::StrCat("cuda:", index);
}

const char* MemoryKindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kHost:
      return "host";
    case MemoryKind::kPinnedHost:
      return "pinned_host";
    case MemoryKind::kDevice:
      return "device";
  }
  return "?";
}

template <typename T>
absl::StatusOr<TensorView<T>> TensorView<T>::Of(const BufferView& view) {
  const bool wide = view.dtype == DType::kFp32;
  if (wide != std::is_same_v<T, float>) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", DTypeName(view.dtype), " view is not a TensorView<",
                     std::is_same_v<T, float> ? "float" : "uint16_t", ">"));
  }
  return TensorView<T>(static_cast<T*>(view.data), view.count, view.dtype, view.device);
}
template class TensorView<float>;
template class TensorView<uint16_t>;

// --- Allocators ---------------------------------------------------------------------------

size_t Allocator::in_use() const { return static_cast<size_t>(in_use_.load()); }
size_t Allocator::high_water() const { return static_cast<size_t>(high_water_.load()); }
void Allocator::ResetHighWater() { high_water_.store(in_use_.load()); }

void Allocator::Account(int64_t delta) {
  const int64_t now = in_use_.fetch_add(delta) + delta;
  int64_t seen = high_water_.load();
  while (now > seen && !high_water_.compare_exchange_weak(seen, now)) {
  }
}

namespace {

constexpr size_t kAlignment = 64;

class HostMemory : public Allocator {
 public:
  explicit HostMemory(MemoryKind kind) : kind_(kind) {}
  MemoryKind kind() const override { return kind_; }
  Device device() const override { return Device::Cpu(); }
  absl::StatusOr<void*> Allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    // More than the machine has never succeeds (and sanitizers abort on such sizes): say so.
    static const size_t physical =
        static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p =
        bytes > physical
            ? nullptr
            : std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat(MemoryKindName(kind_), " memory: cannot allocate ", bytes, " bytes"));
    }
    Account(static_cast<int64_t>(bytes));
    return p;
  }
  void Free(void* ptr, size_t bytes) override {
    if (ptr == nullptr) return;
    std::free(ptr);
    Account(-static_cast<int64_t>(bytes));
  }

 private:
  const MemoryKind kind_;
};

}  // namespace

Allocator& HostAllocator() {
  static Allocator* const host = new HostMemory(MemoryKind::kHost);
  return *host;
}

std::unique_ptr<Allocator> CreateHostAllocator(MemoryKind kind) {
  return std::make_unique<HostMemory>(kind);
}

absl::StatusOr<Buffer> Buffer::Allocate(Allocator& allocator, size_t count, DType dtype) {
  Buffer buffer;
  const size_t bytes = count * SizeOf(dtype);
  absl::StatusOr<void*> p = allocator.Allocate(bytes);
  if (!p.ok()) return p.status();
  if (allocator.kind() != MemoryKind::kDevice && bytes > 0) std::memset(*p, 0, bytes);
  buffer.allocator_ = &allocator;
  buffer.view_ = {*p, count, dtype, allocator.device()};
  return buffer;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    Reset();
    allocator_ = std::exchange(o.allocator_, nullptr);
    view_ = std::exchange(o.view_, BufferView{});
  }
  return *this;
}

void Buffer::Reset() {
  if (allocator_ != nullptr) allocator_->Free(view_.data, view_.bytes());
  allocator_ = nullptr;
  view_ = BufferView{};
}

// --- Events -------------------------------------------------------------------------------

struct EventState {
  mutable zerorun::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);
  Event::Probe probe;  // Device events only; set before the event is shared.
  std::shared_ptr<void> native;
  void* handle = nullptr;

  // Device events: asks the probe unless already done. Returns done.
  bool Poll() {
    zerorun::MutexLock lock(&mu);
    if (done || !probe) return done;
    absl::StatusOr<bool> now = probe();
    if (now.ok() && !*now) return false;
    status = now.status();
    done = true;
    return true;
  }
};

Event::Event() : state_(std::make_shared<EventState>()) {
  zerorun::MutexLock lock(&state_->mu);
  state_->done = true;
}

Event Event::Pending() {
  Event event;
  zerorun::MutexLock lock(&event.state_->mu);
  event.state_->done = false;
  return event;
}

Event Event::Device(Probe probe, std::shared_ptr<void> native, void* handle) {
  Event event = Pending();
  event.state_->probe = std::move(probe);
  event.state_->native = std::move(native);
  event.state_->handle = handle;
  return event;
}

void* Event::native() const { return state_->handle; }

bool Event::Query() const {
  if (state_->probe) return state_->Poll();
  zerorun::MutexLock lock(&state_->mu);
  return state_->done;
}

absl::Status Event::Wait(absl::Duration timeout) const {
  EventState& s = *state_;
  if (s.probe) {  // Poll with back-off: 10 us doubling to 1 ms.
    const absl::Time deadline = absl::Now() + timeout;
    absl::Duration pause = absl::Microseconds(10);
    while (!s.Poll()) {
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("not complete after ", absl::FormatDuration(timeout)));
      }
      absl::SleepFor(pause);
      pause = std::min(pause * 2, absl::Milliseconds(1));
    }
    zerorun::MutexLock lock(&s.mu);
    return s.status;
  }
  zerorun::MutexLock lock(&s.mu);
  auto done = [&s]() ABSL_SHARED_LOCKS_REQUIRED(s.mu) { return s.done; };
  if (timeout == absl::InfiniteDuration()) {
    s.mu.Await(zerorun::Condition(&done));
  } else if (!s.mu.AwaitWithTimeout(zerorun::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("not complete after ", absl::FormatDuration(timeout)));
  }
  return s.status;
}

void Event::Complete(absl::Status status) const {
  zerorun::MutexLock lock(&state_->mu);
  state_->status = std::move(status);
  state_->done = true;
}

// --- Streams ------------------------------------------------------------------------------

namespace {

class CpuStream : public Stream {
 public:
  explicit CpuStream(bool async) : async_(async) {
    if (async_) thread_ = std::thread([this] { Loop(); });
  }
  ~CpuStream() override {
    if (!async_) return;
    {
      zerorun::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  Device device() const override { return Device::Cpu(); }

  void Enqueue(Task task) override {
    if (!async_) return Run(task);
    zerorun::MutexLock lock(&mu_);
    queue_.push_back(std::move(task));
  }

  Event Record() override {
    if (!async_) {
      Event event = Event::Pending();
      zerorun::MutexLock lock(&mu_);
      event.Complete(error_);
      return event;
    }
    Event event = Event::Pending();
    zerorun::MutexLock lock(&mu_);
    queue_.push_back(Marker{event});
    return event;
  }

  void Wait(const Event& event) override {
    if (!async_) return Run([event] { return event.Wait(); });
    zerorun::MutexLock lock(&mu_);
    queue_.push_back(Gate{event});
  }

  absl::Status Synchronize() override { return Record().Wait(); }

  absl::Status status() override {
    zerorun::MutexLock lock(&mu_);
    return error_;
  }

 private:
  struct Marker {  // Record(): complete the event with the stream's status.
    Event event;
  };
  struct Gate {  // Wait(): hold later work until the event completes (its error sticks).
    Event event;
  };
  using Item = std::variant<Task, Marker, Gate>;

  // Runs one task unless an earlier one failed; the first error sticks.
  void Run(const Task& task) {
    {
      zerorun::MutexLock lock(&mu_);
      if (!error_.ok()) return;
    }
    absl::Status status = task();  // Unlocked: Enqueue and Record go on meanwhile.
    zerorun::MutexLock lock(&mu_);
    if (error_.ok()) error_ = std::move(status);
  }

  void Loop() {
    for (;;) {
      Item item;
      {
        zerorun::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
        mu_.Await(zerorun::Condition(&ready));
        if (queue_.empty()) return;  // Stopping with nothing left.
        item = std::move(queue_.front());
        queue_.pop_front();
      }
      if (Task* task = std::get_if<Task>(&item)) {
        Run(*task);
      } else if (Gate* gate = std::get_if<Gate>(&item)) {
        Run([&gate] { return gate->event.Wait(); });
      } else {
        absl::Status status;
        {
          zerorun::MutexLock lock(&mu_);
          status = error_;
        }
        std::get<Marker>(item).event.Complete(std::move(status));
      }
    }
  }

  const bool async_;
  zerorun::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Stream> CreateCpuStream(bool async) { return std::make_unique<CpuStream>(async); }

}  // namespace zerorun
