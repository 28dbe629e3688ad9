// The CUDA implementation of the device layer (builds with CUDA only): streams whose tasks launch
// device work in order, events as cudaEvents polled through Event::Device, the device allocator on
// the stream-ordered memory pool (cached, as a caching allocator does), and pinned host memory.
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "kernels/cuda_status.h"
#include "zerorun/device.h"

namespace zerorun {
namespace {

using cuda::FromCuda;

absl::Status OnDevice(int index) {
  return FromCuda(cudaSetDevice(index), absl::StrCat("cudaSetDevice(", index, ")").c_str());
}

class CudaStream : public Stream {
 public:
  CudaStream(int index, cudaStream_t stream, bool owned)
      : index_(index), stream_(stream), owned_(owned) {}
  ~CudaStream() override {
    static_cast<void>(cudaSetDevice(index_));
    static_cast<void>(cudaStreamSynchronize(stream_));  // Runs what is queued, as CpuStream does.
    if (owned_) static_cast<void>(cudaStreamDestroy(stream_));
  }

  Device device() const override { return Device::Cuda(index_); }
  void* native() const override { return stream_; }

  void Enqueue(Task task) override {
    if (!status().ok()) return;
    absl::Status s = OnDevice(index_);
    if (s.ok()) s = task();
    Stick(std::move(s));
  }

  Event Record() override {
    if (absl::Status s = status(); !s.ok()) return Failed(std::move(s));
    cudaEvent_t raw = nullptr;
    absl::Status s = OnDevice(index_);
    if (s.ok()) {
      s = FromCuda(cudaEventCreateWithFlags(&raw, cudaEventDisableTiming), "cudaEventCreate");
    }
    if (s.ok()) s = FromCuda(cudaEventRecord(raw, stream_), "cudaEventRecord");
    if (!s.ok()) {
      if (raw != nullptr) static_cast<void>(cudaEventDestroy(raw));
      Stick(s);
      return Failed(std::move(s));
    }
    std::shared_ptr<void> owner(
        raw, [](void* e) { static_cast<void>(cudaEventDestroy(static_cast<cudaEvent_t>(e))); });
    return Event::Device(
        [raw]() -> absl::StatusOr<bool> {
          const cudaError_t err = cudaEventQuery(raw);
          if (err == cudaErrorNotReady) return false;
          if (absl::Status s = FromCuda(err, "the stream's work (cudaEventQuery)"); !s.ok()) {
            return s;
          }
          return true;
        },
        std::move(owner), raw);
  }

  void Wait(const Event& event) override {
    if (!status().ok()) return;
    if (event.native() == nullptr) {  // A host event: the enqueuing thread waits.
      Stick(event.Wait());
      return;
    }
    absl::Status s = OnDevice(index_);
    if (s.ok()) {
      s = FromCuda(cudaStreamWaitEvent(stream_, static_cast<cudaEvent_t>(event.native()), 0),
                   "cudaStreamWaitEvent");
    }
    Stick(std::move(s));
  }

  absl::Status Synchronize() override {
    if (absl::Status s = status(); !s.ok()) return s;
    absl::Status s = OnDevice(index_);
    if (s.ok()) s = FromCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    Stick(s);
    return status();
  }

  absl::Status status() override {
    zerorun::MutexLock lock(&mu_);
    return error_;
  }

 private:
  static Event Failed(absl::Status status) {
    Event event = Event::Pending();
    event.Complete(std::move(status));
    return event;
  }
  void Stick(absl::Status s) {
    if (s.ok()) return;
    zerorun::MutexLock lock(&mu_);
    if (error_.ok()) {
      error_ = absl::Status(s.code(), absl::StrCat("cuda:", index_, " stream: ", s.message()));
    }
  }

  const int index_;
  const cudaStream_t stream_;
  const bool owned_;
  zerorun::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

class CudaMemory : public Allocator {
 public:
  CudaMemory(MemoryKind kind, int index, cudaStream_t stream)
      : kind_(kind), index_(index), stream_(stream) {}
  ~CudaMemory() override {
    if (stream_ != nullptr) static_cast<void>(cudaStreamDestroy(stream_));
  }
  MemoryKind kind() const override { return kind_; }
  Device device() const override {
    return kind_ == MemoryKind::kDevice ? Device::Cuda(index_) : Device::Cpu();
  }

  absl::StatusOr<void*> Allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    absl::Status s = OnDevice(index_);
    if (s.ok() && kind_ == MemoryKind::kDevice) {
      s = FromCuda(cudaMallocAsync(&p, bytes, stream_), "cudaMallocAsync");
      if (s.ok()) s = FromCuda(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync");
      if (s.ok()) s = FromCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    } else if (s.ok()) {
      s = FromCuda(cudaHostAlloc(&p, bytes, cudaHostAllocPortable), "cudaHostAlloc");
    }
    if (!s.ok()) {
      if (p != nullptr) Release(p);
      return absl::ResourceExhaustedError(
          absl::StrCat(MemoryKindName(kind_), " memory on cuda:", index_, ": cannot allocate ",
                       bytes, " bytes (", s.message(), ")"));
    }
    Account(static_cast<int64_t>(bytes));
    return p;
  }

  void Free(void* ptr, size_t bytes) override {
    if (ptr == nullptr) return;
    Release(ptr);
    Account(-static_cast<int64_t>(bytes));
  }

 private:
  void Release(void* p) {
    static_cast<void>(cudaSetDevice(index_));
    if (kind_ == MemoryKind::kDevice) {
      static_cast<void>(cudaFreeAsync(p, stream_));
    } else {
      static_cast<void>(cudaFreeHost(p));
    }
  }

  const MemoryKind kind_;
  const int index_;
  const cudaStream_t stream_;  // Device memory's allocation stream; null for pinned memory.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Stream>> CreateCudaStream(int index) {
  if (absl::Status s = OnDevice(index); !s.ok()) return s;
  cudaStream_t stream = nullptr;
  if (absl::Status s =
          FromCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
      !s.ok()) {
    return s;
  }
  return std::make_unique<CudaStream>(index, stream, /*owned=*/true);
}

absl::StatusOr<std::unique_ptr<Stream>> WrapCudaStream(int index, void* cuda_stream) {
  if (absl::Status s = OnDevice(index); !s.ok()) return s;
  return std::make_unique<CudaStream>(index, static_cast<cudaStream_t>(cuda_stream),
                                      /*owned=*/false);
}

absl::StatusOr<std::unique_ptr<Allocator>> CreateCudaAllocator(MemoryKind kind, int index) {
  if (kind == MemoryKind::kHost) return CreateHostAllocator(kind);
  if (absl::Status s = OnDevice(index); !s.ok()) return s;
  cudaStream_t stream = nullptr;
  if (kind == MemoryKind::kDevice) {
    // Freed memory stays in the pool for the next allocation (no trip to the driver).
    cudaMemPool_t pool = nullptr;
    uint64_t keep = UINT64_MAX;
    if (absl::Status s = FromCuda(cudaDeviceGetDefaultMemPool(&pool, index), "the memory pool");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = FromCuda(
            cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "the pool");
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            FromCuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
        !s.ok()) {
      return s;
    }
  }
  return std::make_unique<CudaMemory>(kind, index, stream);
}

}  // namespace zerorun
