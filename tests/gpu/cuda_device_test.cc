// GPU tests (label gpu; need a CUDA device): the CUDA device layer. Streams run their tasks'
// device work in order, a stream waiting on another's event runs after it (cudaStreamWaitEvent,
// no host wait), a failed task sticks, wrapped streams (torch's) are used and not destroyed; the
// device allocator zero-fills and counts its high-water mark, the pinned one gives host memory.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "zerorun/cuda_kernels.h"
#include "zerorun/device.h"
#include "zerorun/dtype.h"

namespace zerorun {
namespace {

absl::Status Copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, void* stream) {
  const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, kind, static_cast<cudaStream_t>(stream));
  return err == cudaSuccess ? absl::OkStatus() : absl::InternalError(cudaGetErrorString(err));
}

TEST_CASE("CUDA streams order device work, across streams by events", "[gpu][device]") {
  absl::StatusOr<std::unique_ptr<Allocator>> device = CreateCudaAllocator(MemoryKind::kDevice, 0);
  absl::StatusOr<std::unique_ptr<Allocator>> pinned =
      CreateCudaAllocator(MemoryKind::kPinnedHost, 0);
  REQUIRE(device.ok());
  REQUIRE(pinned.ok());
  CHECK((*device)->device() == Device::Cuda(0));
  CHECK((*pinned)->device() == Device::Cpu());
  constexpr size_t kN = 1 << 24;  // 64 MiB of fp32: long enough for a race to show.
  absl::StatusOr<Buffer> x = Buffer::Allocate(**device, kN, DType::kFp32);
  absl::StatusOr<Buffer> host = Buffer::Allocate(**pinned, kN, DType::kFp32);
  REQUIRE(x.ok());
  REQUIRE(host.ok());
  CHECK((*device)->in_use() == kN * 4);
  CHECK((*device)->high_water() == kN * 4);
  CHECK(x->view().device == Device::Cuda(0));

  absl::StatusOr<std::unique_ptr<Stream>> a = CreateCudaStream(0);
  absl::StatusOr<std::unique_ptr<Stream>> b = CreateCudaStream(0);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->native() != nullptr);
  float* h = static_cast<float*>(host->view().data);
  float* d = static_cast<float*>(x->view().data);
  // Zero-filled on allocation.
  (*a)->Enqueue([&] { return Copy(h, d, kN * 4, cudaMemcpyDeviceToHost, (*a)->native()); });
  REQUIRE((*a)->Synchronize().ok());
  CHECK(h[0] == 0.0f);
  CHECK(h[kN - 1] == 0.0f);
  // A: fill with 1.5 and scale by 3 x 100 times; B: after A's event, copy back.
  for (size_t i = 0; i < kN; ++i) h[i] = 1.5f;
  (*a)->Enqueue([&] { return Copy(d, h, kN * 4, cudaMemcpyHostToDevice, (*a)->native()); });
  for (int i = 0; i < 100; ++i) {
    (*a)->Enqueue(
        [&] { return cuda::ScaleDevice(d, kN, i % 2 == 0 ? 3.0f : 1.0f / 3, (*a)->native()); });
  }
  const Event filled = (*a)->Record();
  CHECK(filled.native() != nullptr);
  (*b)->Wait(filled);
  std::vector<float> out(kN);
  absl::StatusOr<Buffer> back = Buffer::Allocate(**pinned, kN, DType::kFp32);
  REQUIRE(back.ok());
  float* r = static_cast<float*>(back->view().data);
  (*b)->Enqueue([&] { return Copy(r, d, kN * 4, cudaMemcpyDeviceToHost, (*b)->native()); });
  REQUIRE((*b)->Synchronize().ok());
  CHECK(filled.Query());
  float expect = 1.5f;
  for (int i = 0; i < 100; ++i) expect *= i % 2 == 0 ? 3.0f : 1.0f / 3;
  CHECK(r[0] == expect);
  CHECK(r[kN - 1] == expect);

  x->Reset();
  CHECK((*device)->in_use() == 0);
  CHECK((*device)->high_water() == kN * 4);
}

TEST_CASE("A failed CUDA stream task sticks; a wrapped stream is used, not destroyed",
          "[gpu][device]") {
  absl::StatusOr<std::unique_ptr<Stream>> s = CreateCudaStream(0);
  REQUIRE(s.ok());
  (*s)->Enqueue([] { return absl::InternalError("launch failed"); });
  int ran = 0;
  (*s)->Enqueue([&] {
    ++ran;
    return absl::OkStatus();
  });
  CHECK(ran == 0);
  CHECK_THAT(std::string((*s)->Record().Wait().message()), Catch::Contains("launch failed"));
  CHECK_THAT(std::string((*s)->Synchronize().message()), Catch::Contains("cuda:0 stream"));

  cudaStream_t theirs = nullptr;
  REQUIRE(cudaStreamCreate(&theirs) == cudaSuccess);
  {
    absl::StatusOr<std::unique_ptr<Stream>> wrapped = WrapCudaStream(0, theirs);
    REQUIRE(wrapped.ok());
    CHECK((*wrapped)->native() == theirs);
    CHECK((*wrapped)->Synchronize().ok());
  }
  CHECK(cudaStreamQuery(theirs) == cudaSuccess);  // Still a valid stream.
  CHECK(cudaStreamDestroy(theirs) == cudaSuccess);
}

TEST_CASE("The device allocator reports a size it cannot give as ResourceExhausted",
          "[gpu][device]") {
  absl::StatusOr<std::unique_ptr<Allocator>> device = CreateCudaAllocator(MemoryKind::kDevice, 0);
  REQUIRE(device.ok());
  absl::StatusOr<void*> huge = (*device)->Allocate(size_t{1} << 50);  // 1 PiB.
  CHECK(absl::IsResourceExhausted(huge.status()));
  CHECK_THAT(std::string(huge.status().message()), Catch::Contains("device memory on cuda:0"));
  CHECK((*device)->in_use() == 0);
}

}  // namespace
}  // namespace zerorun
