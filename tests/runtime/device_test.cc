// The CPU device layer: streams run work in enqueue order, wait on other streams' events, and
// surface the first error to every later event; events complete, time out and carry status;
// allocators account bytes in use and their high-water mark; buffers own, move and free. Real
// threads (TSan runs the [device] tag).
#include "zerorun/device.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace zerorun {
namespace {

TEST_CASE("A stream runs its work in enqueue order and Synchronize waits for all of it",
          "[device]") {
  for (bool async : {true, false}) {
    INFO("async " << async);
    std::unique_ptr<Stream> stream = CreateCpuStream(async);
    std::vector<int> order;  // Written by the stream only, read after Synchronize.
    for (int i = 0; i < 500; ++i) {
      stream->Enqueue([&order, i] {
        order.push_back(i);
        return absl::OkStatus();
      });
    }
    REQUIRE(stream->Synchronize().ok());
    REQUIRE(order.size() == 500);
    for (int i = 0; i < 500; ++i) REQUIRE(order[i] == i);
    CHECK(stream->device() == Device::Cpu());
  }
}

TEST_CASE("An async stream runs off the caller's thread, an inline one inside Enqueue",
          "[device]") {
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran;
  std::unique_ptr<Stream> inline_stream = CreateCpuStream(false);
  inline_stream->Enqueue([&] {
    ran = std::this_thread::get_id();
    return absl::OkStatus();
  });
  CHECK(ran == caller);  // Already ran: no Synchronize needed.
  CHECK(inline_stream->Record().Query());

  std::unique_ptr<Stream> async_stream = CreateCpuStream(true);
  std::atomic<bool> release{false};
  async_stream->Enqueue([&] {
    ran = std::this_thread::get_id();
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return absl::OkStatus();
  });
  const Event pending = async_stream->Record();
  CHECK_FALSE(pending.Query());  // Held by the task: Enqueue and Record did not wait.
  CHECK(absl::IsDeadlineExceeded(pending.Wait(absl::Milliseconds(20))));
  release.store(true);
  REQUIRE(pending.Wait().ok());
  CHECK(pending.Query());
  CHECK(ran != caller);
}

TEST_CASE("A stream that waits on another stream's event runs after the work before it",
          "[device]") {
  std::unique_ptr<Stream> producer = CreateCpuStream(true);
  std::unique_ptr<Stream> consumer = CreateCpuStream(true);
  std::atomic<int> value{0};
  int seen = -1;
  producer->Enqueue([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    value.store(42);
    return absl::OkStatus();
  });
  consumer->Wait(producer->Record());
  consumer->Enqueue([&] {
    seen = value.load();
    return absl::OkStatus();
  });
  REQUIRE(consumer->Synchronize().ok());
  CHECK(seen == 42);
}

TEST_CASE("A failed task skips the rest, and every later event and Synchronize carry its error",
          "[device]") {
  for (bool async : {true, false}) {
    INFO("async " << async);
    std::unique_ptr<Stream> stream = CreateCpuStream(async);
    int ran = 0;
    stream->Enqueue([&] {
      ++ran;
      return absl::OkStatus();
    });
    const Event before = stream->Record();
    stream->Enqueue([] { return absl::DataLossError("rank 1: unit h.2: read failed"); });
    stream->Enqueue([&] {
      ++ran;  // Skipped.
      return absl::OkStatus();
    });
    const Event after = stream->Record();
    CHECK(before.Wait().ok());
    const absl::Status error = after.Wait();
    CHECK(absl::IsDataLoss(error));
    CHECK(error.message() == "rank 1: unit h.2: read failed");
    CHECK(absl::IsDataLoss(stream->Synchronize()));
    CHECK(absl::IsDataLoss(stream->status()));
    CHECK(ran == 1);
    // A stream waiting on the failed event fails too (the error crosses streams).
    std::unique_ptr<Stream> other = CreateCpuStream(async);
    other->Wait(after);
    CHECK(absl::IsDataLoss(other->Synchronize()));
  }
}

TEST_CASE("Events: a default event is complete, a pending one completes once with a status",
          "[device]") {
  CHECK(Event().Query());
  CHECK(Event().Wait().ok());
  const Event pending = Event::Pending();
  const Event copy = pending;  // Copies share the state.
  CHECK_FALSE(copy.Query());
  CHECK(absl::IsDeadlineExceeded(copy.Wait(absl::Milliseconds(5))));
  std::thread completer([pending] { pending.Complete(absl::AbortedError("peer gone")); });
  CHECK(absl::IsAborted(copy.Wait()));
  completer.join();
  CHECK(copy.Query());
}

TEST_CASE("Device events complete when their probe says so, polled by Query and Wait", "[device]") {
  // A device's completion flag (a CUDA event's) set by another thread after a while.
  std::atomic<bool> finished{false};
  std::atomic<int> polls{0};
  int handle = 0;
  Event event = Event::Device(
      [&]() -> absl::StatusOr<bool> {
        ++polls;
        return finished.load();
      },
      nullptr, &handle);
  CHECK(event.native() == &handle);
  CHECK(Event().native() == nullptr);
  CHECK_FALSE(event.Query());
  CHECK(absl::IsDeadlineExceeded(event.Wait(absl::Milliseconds(20))));
  std::thread device([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    finished = true;
  });
  CHECK(event.Wait(absl::Seconds(10)).ok());
  device.join();
  const int seen = polls.load();
  CHECK(event.Query());
  CHECK(polls.load() == seen);  // Done sticks: the probe is not asked again.
  // A CPU stream waits on a device event as on any other.
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  stream->Wait(event);
  CHECK(stream->Synchronize().ok());
  // A probe's error completes the event with it, and a stream waiting on it carries it.
  Event failed =
      Event::Device([] { return absl::InternalError("an illegal address"); }, nullptr, nullptr);
  CHECK_THAT(std::string(failed.Wait().message()), Catch::Contains("illegal address"));
  stream->Wait(failed);
  CHECK_THAT(std::string(stream->Synchronize().message()), Catch::Contains("illegal address"));
}

TEST_CASE("Allocators count bytes in use and keep the high-water mark", "[device]") {
  std::unique_ptr<Allocator> host = CreateHostAllocator();
  CHECK(host->kind() == MemoryKind::kHost);
  CHECK(std::string(MemoryKindName(MemoryKind::kPinnedHost)) == "pinned_host");
  absl::StatusOr<Buffer> a = Buffer::Allocate(*host, 1000, DType::kFp32);
  absl::StatusOr<Buffer> b = Buffer::Allocate(*host, 3000, DType::kBf16);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(host->in_use() == 4000 + 6000);
  CHECK(reinterpret_cast<uintptr_t>(a->view().data) % 64 == 0);
  const float* f = static_cast<const float*>(a->view().data);
  for (size_t i = 0; i < 1000; ++i) REQUIRE(f[i] == 0.0f);  // Zero-filled.
  CHECK(b->view().dtype == DType::kBf16);
  CHECK(b->view().bytes() == 6000);
  a->Reset();
  CHECK(host->in_use() == 6000);
  CHECK(host->high_water() == 10000);
  {
    Buffer moved = std::move(*b);  // Ownership moves; the source is empty, nothing freed twice.
    CHECK(b->view().data == nullptr);
    CHECK(moved.size() == 3000);
    CHECK(host->in_use() == 6000);
  }
  CHECK(host->in_use() == 0);
  CHECK(host->high_water() == 10000);
  host->ResetHighWater();
  CHECK(host->high_water() == 0);
  // Threads allocating at once: the counts add up.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<Buffer> x = Buffer::Allocate(*host, 256, DType::kFp32);
        if (!x.ok()) return;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(host->in_use() == 0);
  CHECK(host->high_water() >= 1024);
  CHECK(host->high_water() <= 4 * 1024);
  // An impossible size is ResourceExhausted naming the space, not a crash.
  absl::StatusOr<Buffer> huge = Buffer::Allocate(*host, size_t{1} << 60, DType::kFp32);
  CHECK(absl::IsResourceExhausted(huge.status()));
  CHECK_THAT(std::string(huge.status().message()), Catch::Contains("host memory"));
  CHECK(host->in_use() == 0);
}

TEST_CASE("Views slice by element and typed views check the dtype", "[device]") {
  std::vector<uint16_t> bits(10);
  const BufferView view = HostView(bits.data(), bits.size(), DType::kFp16);
  const BufferView tail = view.Slice(4, 6);
  CHECK(tail.data == bits.data() + 4);
  CHECK(tail.bytes() == 12);
  CHECK(tail.dtype == DType::kFp16);
  absl::StatusOr<TensorView<uint16_t>> typed = TensorView<uint16_t>::Of(tail);
  REQUIRE(typed.ok());
  (*typed)[0] = 7;
  CHECK(bits[4] == 7);
  CHECK(TensorView<float>::Of(view).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Device::Cuda(1).ToString() == "cuda:1");
  CHECK(Device::Cpu().ToString() == "cpu");
}

}  // namespace
}  // namespace zerorun
