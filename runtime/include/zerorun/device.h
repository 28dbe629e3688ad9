// The runtime's ground floor: where memory lives (Device), views of it (BufferView, TensorView),
// owning buffers from per-memory-space allocators that keep their high-water mark, and ordered
// execution (Stream, Event) with CUDA streams' semantics. The CPU implementation is in
// device/cpu_device.cc, the CUDA one (streams, events, allocators) in device/cuda_device.cc behind
// the same classes. Nothing here knows ZeRO.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_DEVICE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_DEVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "zerorun/dtype.h"

namespace zerorun {

enum class DeviceKind { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;
  static Device Cpu() { return Device{}; }
  static Device Cuda(int index) { return Device{DeviceKind::kCuda, index}; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string ToString() const;  // "cpu", "cuda:1"
};

// A window on memory someone else owns: `count` elements of `dtype` at `data` on `device`. A
// view never frees; it lives as long as its owner keeps the memory (a Buffer, a std::vector, a
// torch tensor) and the owner's contract says. Copying a view copies the pointer only.
struct BufferView {
  void* data = nullptr;
  size_t count = 0;
  DType dtype = DType::kFp32;
  Device device;

  size_t bytes() const { return count * SizeOf(dtype); }
  bool empty() const { return count == 0; }
  // Elements [offset, offset + n) of this view; the caller keeps offset + n <= count.
  BufferView Slice(size_t offset, size_t n) const {
    return {static_cast<char*>(data) + offset * SizeOf(dtype), n, dtype, device};
  }
  bool SameMemory(const BufferView& o) const {
    return data == o.data && bytes() == o.bytes() && device == o.device;
  }
};

// Host views of fp32 data and of 16-bit bit patterns (kBf16 / kFp16).
inline BufferView HostView(float* data, size_t count) {
  return {data, count, DType::kFp32, Device::Cpu()};
}
inline BufferView HostView(uint16_t* data, size_t count, DType dtype) {
  return {data, count, dtype, Device::Cpu()};
}

// A typed view: float for kFp32, uint16_t bit patterns for kBf16 and kFp16. Same lifetime rules
// as BufferView.
template <typename T>
class TensorView {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, uint16_t>,
                "TensorView holds fp32 (float) or 16-bit bit patterns (uint16_t)");

 public:
  TensorView() = default;
  TensorView(T* data, size_t count, DType dtype, Device device = Device::Cpu())
      : data_(data), count_(count), dtype_(dtype), device_(device) {}
  // InvalidArgument when `view`'s dtype is not stored as T.
  static absl::StatusOr<TensorView> Of(const BufferView& view);

  T* data() const { return data_; }
  size_t size() const { return count_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  T& operator[](size_t i) const { return data_[i]; }  // Host views only.
  T* begin() const { return data_; }
  T* end() const { return data_ + count_; }
  BufferView view() const { return {data_, count_, dtype_, device_}; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
  DType dtype_ = std::is_same_v<T, float> ? DType::kFp32 : DType::kBf16;
  Device device_;
};

// The memory spaces allocators serve. kPinnedHost is page-locked host memory for device
// transfers (plain host memory on a build without CUDA).
enum class MemoryKind { kHost, kPinnedHost, kDevice };
const char* MemoryKindName(MemoryKind kind);  // "host", "pinned_host", "device"

// Hands out memory of one space and accounts for it. Thread-safe. Memory is 64-byte aligned.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual MemoryKind kind() const = 0;
  virtual Device device() const = 0;
  // ResourceExhausted naming the space and the size when the memory is not there.
  virtual absl::StatusOr<void*> Allocate(size_t bytes) = 0;
  // `bytes` as passed to Allocate.
  virtual void Free(void* ptr, size_t bytes) = 0;

  size_t in_use() const;      // Bytes allocated and not freed.
  size_t high_water() const;  // The most in_use() has been since construction or the reset.
  void ResetHighWater();      // high_water() = in_use().

 protected:
  void Account(int64_t delta);  // Implementations: +bytes on Allocate, -bytes on Free.

 private:
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> high_water_{0};
};

// The process's host allocator (std::aligned_alloc); lives until exit.
Allocator& HostAllocator();
// A fresh host allocator with its own accounting (for a store's memory report; tests).
std::unique_ptr<Allocator> CreateHostAllocator(MemoryKind kind = MemoryKind::kHost);

// Owns `count` elements of `dtype` from an allocator, zero-filled; move-only. The allocator must
// outlive the buffer.
class Buffer {
 public:
  Buffer() = default;
  static absl::StatusOr<Buffer> Allocate(Allocator& allocator, size_t count, DType dtype);
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Reset(); }

  BufferView view() const { return view_; }
  size_t size() const { return view_.count; }
  void Reset();  // Frees; the buffer is then empty.

 private:
  Allocator* allocator_ = nullptr;
  BufferView view_;
};

// Marks a point in a stream: complete once everything the stream was given before it finished.
// A copyable handle (copies share the state); a default Event is already complete and OK.
// Any thread may query or wait on it.
class Event {
 public:
  Event();
  bool Query() const;  // Complete?
  // Blocks until complete; the stream's first error by then (the stream's error sticks: an event
  // recorded after a failure carries it). DeadlineExceeded when `timeout` passes first (the work
  // goes on; waiting again is allowed).
  absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration()) const;

  // For Stream implementations: completes the event with `status`.
  void Complete(absl::Status status) const;
  static Event Pending();
  // A device event (a CUDA stream's): complete once `probe` returns true, or failed with the
  // error it returns; Query polls it, Wait polls it with back-off (no host thread is parked in
  // the driver). `probe` must be thread-safe and must not block. `native` is the backend's
  // handle (a cudaEvent_t), kept alive as long as any copy of the event.
  using Probe = std::function<absl::StatusOr<bool>()>;
  static Event Device(Probe probe, std::shared_ptr<void> native, void* handle);
  void* native() const;  // The backend's handle (cudaEvent_t); nullptr for host events.

 private:
  std::shared_ptr<struct EventState> state_;
};

// An ordered executor with CUDA stream semantics: work runs in the order it was enqueued, after
// every event a Wait() named before it. One thread enqueues (the owner); events cross threads.
// After a task fails, later tasks are skipped and every later event carries the first error.
class Stream {
 public:
  using Task = std::function<absl::Status()>;
  virtual ~Stream() = default;  // Runs what is queued (skipping after an error), then returns.
  virtual Device device() const = 0;
  virtual void Enqueue(Task task) = 0;
  virtual Event Record() = 0;                 // An event after everything enqueued so far.
  virtual void Wait(const Event& event) = 0;  // Later work waits for `event`.
  virtual absl::Status Synchronize() = 0;     // Blocks until idle; the first error, if any.
  virtual absl::Status status() = 0;          // The first error so far; does not wait.
  // The backend's stream (a cudaStream_t) that tasks enqueue device work on; nullptr on the CPU.
  virtual void* native() const { return nullptr; }
};

// A CPU stream: with `async` a thread of its own runs the work (the caller computes meanwhile),
// else each task runs inside Enqueue on the caller's thread (events then complete at once).
std::unique_ptr<Stream> CreateCpuStream(bool async);

// The CUDA device layer (runtime/device/cuda_device.cc; Unimplemented naming the fix in a build
// without CUDA). A CUDA stream runs each task on the enqueuing thread at Enqueue: a task launches
// device work on native() and returns; the work then runs in stream order (CUDA's semantics).
// Record is a cudaEvent (Event::Device); Wait on a device event is cudaStreamWaitEvent (no host
// wait), on a host event the enqueuing thread waits for it. A failed task or launch sticks as
// the CPU stream's does. `index` is the CUDA device; the stream is created non-blocking.
absl::StatusOr<std::unique_ptr<Stream>> CreateCudaStream(int index);
// The same over a stream someone else owns (torch's current stream, `cuda_stream` a
// cudaStream_t): never destroyed here; it must outlive the returned Stream.
absl::StatusOr<std::unique_ptr<Stream>> WrapCudaStream(int index, void* cuda_stream);
// kDevice: cudaMallocAsync from the device's memory pool, kept cached (release threshold at the
// maximum: a caching allocator), zero-filled, ready for any stream when Allocate returns; Free
// only after the work using the memory completed (an event waited), the memory goes back to the
// pool. kPinnedHost: cudaHostAlloc'd page-locked host memory (Offload's staging). kHost: plain.
absl::StatusOr<std::unique_ptr<Allocator>> CreateCudaAllocator(MemoryKind kind, int index);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_DEVICE_H_
