// Collectives v2 on the Gloo backend: collectives issued on a stream answer with Work handles
// (test, wait, wait with a deadline), take in/out views (in place or not, 16-bit results), refuse
// bad views at once without running anything, and a peer process killed mid-collective gives
// Aborted or DeadlineExceeded naming the rank and the operation, never a hang. Ranks are threads
// over loopback TCP, or processes for the kill; references are single-process sums.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "support/child_process.h"
#include "support/temp_dir.h"
#include "zerorun/build_info.h"
#include "zerorun/comm.h"

namespace zerorun {
namespace {

std::vector<absl::Status> OnRanks(int world, const std::function<absl::Status(Communicator&)>& fn) {
  InMemoryKvStore store;
  std::vector<absl::Status> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      CommOptions options;
      options.timeout = absl::Seconds(20);
      auto comm = CreateCommunicator(Device::Cpu(), store, r, world, options);
      results[r] = comm.ok() ? fn(**comm) : comm.status();
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

void RequireAllOk(const std::vector<absl::Status>& results) {
  for (const absl::Status& s : results) {
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
}

float Value(int rank, size_t i) { return static_cast<float>(rank + 1) + 0.125f * (i % 7); }

TEST_CASE("Collectives queued on a stream complete in order and fill out-of-place views",
          "[comm][work]") {
  const int world = 3;
  const size_t shard = 1000;
  std::vector<std::vector<float>> in(world), reduced(world, std::vector<float>(shard)),
      gathered(world, std::vector<float>(shard * world));
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < shard * world; ++i) in[r].push_back(Value(r, i));
  }
  const std::vector<std::vector<float>> original = in;
  RequireAllOk(OnRanks(world, [&](Communicator& c) -> absl::Status {
    const int r = c.rank();
    std::unique_ptr<Stream> stream = CreateCpuStream(true);
    // Reduce-scatter out of place, then gather the reduced shards: the second reads what the
    // first wrote, so only stream order makes it right.
    const Work scatter =
        c.ReduceScatter(HostView(in[r].data(), shard * world), HostView(reduced[r].data(), shard),
                        ReduceOp::kSum, stream.get());
    const Work gather = c.AllGather(HostView(reduced[r].data(), shard),
                                    HostView(gathered[r].data(), shard * world), stream.get());
    if (absl::Status s = gather.Wait(); !s.ok()) return s;
    if (!scatter.Test() || !gather.Test()) return absl::InternalError("done but not Test()");
    return scatter.status();
  }));
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < shard * world; ++i) {
      float sum = 0;
      for (int q = 0; q < world; ++q) sum += original[q][i];
      REQUIRE(gathered[r][i] == sum);  // Small integers and eighths: exact in any order.
    }
  }
}

TEST_CASE("A 16-bit reduce-scatter into a 16-bit view rounds the fp32 result once",
          "[comm][work]") {
  const int world = 2;
  const size_t shard = 64;
  std::vector<std::vector<uint16_t>> in(world), out16(world, std::vector<uint16_t>(shard));
  std::vector<std::vector<float>> out32(world, std::vector<float>(shard));
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < shard * world; ++i) in[r].push_back(FloatToBf16(Value(r, i) / 3));
  }
  std::vector<std::vector<uint16_t>> again = in;
  RequireAllOk(OnRanks(world, [&](Communicator& c) -> absl::Status {
    const int r = c.rank();
    const Work a = c.ReduceScatter(HostView(in[r].data(), shard * world, DType::kBf16),
                                   HostView(out32[r].data(), shard), ReduceOp::kAvg);
    if (absl::Status s = a.Wait(); !s.ok()) return s;
    return c
        .ReduceScatter(HostView(again[r].data(), shard * world, DType::kBf16),
                       HostView(out16[r].data(), shard, DType::kBf16), ReduceOp::kAvg)
        .Wait();
  }));
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < shard; ++i) REQUIRE(out16[r][i] == FloatToBf16(out32[r][i]));
  }
}

TEST_CASE("Bad views are InvalidArgument at once and nothing runs", "[comm][work]") {
  RequireAllOk(OnRanks(2, [](Communicator& c) -> absl::Status {
    std::unique_ptr<Stream> stream = CreateCpuStream(true);
    std::vector<float> data(8);
    std::vector<uint16_t> half(8);
    const BufferView full = HostView(data.data(), 8);
    const std::vector<std::pair<const char*, Work>> bad = {
        {"short in",
         c.ReduceScatter(full.Slice(0, 6), full.Slice(0, 4), ReduceOp::kSum, stream.get())},
        {"fp16 into bf16",
         c.ReduceScatter(HostView(half.data(), 8, DType::kFp16),
                         HostView(half.data(), 4, DType::kBf16), ReduceOp::kSum, stream.get())},
        {"overlap not own shard",
         c.ReduceScatter(full, full.Slice(c.rank() == 0 ? 4 : 0, 4), ReduceOp::kSum, stream.get())},
        {"gather dtype", c.AllGather(HostView(half.data(), 4, DType::kBf16), full, stream.get())},
        {"gather size", c.AllGather(full.Slice(0, 3), full, stream.get())},
        {"device memory", c.AllReduce(BufferView{data.data(), 8, DType::kFp32, Device::Cuda(0)},
                                      ReduceOp::kSum, stream.get())},
        {"16-bit all-reduce",
         c.AllReduce(HostView(half.data(), 8, DType::kBf16), ReduceOp::kSum, stream.get())},
        {"root", c.Broadcast(full, 2, stream.get())},
    };
    for (const auto& [what, work] : bad) {
      if (!work.Test() || !absl::IsInvalidArgument(work.status())) {
        return absl::InternalError(absl::StrCat(what, ": ", work.status().ToString()));
      }
      if (!absl::StrContains(work.status().message(), absl::StrCat("rank ", c.rank()))) {
        return absl::InternalError(absl::StrCat(what, " does not name the rank"));
      }
    }
    // Nothing reached the wire: the next real collective still pairs up.
    if (absl::Status s = c.Barrier(stream.get()).Wait(); !s.ok()) return s;
    return stream->status();
  }));
  // A CUDA device gets NCCL: Unimplemented naming the fix in a CPU build, an error naming the
  // device where the build has CUDA but the machine no GPU (tests/gpu runs it on one).
  InMemoryKvStore store;
  CommOptions options;
  options.timeout = absl::Seconds(5);
  auto cuda = CreateCommunicator(Device::Cuda(0), store, 0, 1, options);
  if (!GetBuildInfo().with_cuda) {
    CHECK(cuda.status().code() == absl::StatusCode::kUnimplemented);
    CHECK_THAT(std::string(cuda.status().message()), Catch::Contains("--device cpu"));
  } else if (CudaDeviceCount().value_or(0) == 0) {
    CHECK_THAT(std::string(cuda.status().message()), Catch::Contains("cuda:0"));
  }
}

TEST_CASE("Work.Wait with a deadline times out while a peer is late, then completes",
          "[comm][work]") {
  std::vector<float> out(2);
  RequireAllOk(OnRanks(2, [&](Communicator& c) -> absl::Status {
    std::unique_ptr<Stream> stream = CreateCpuStream(true);
    std::vector<float> data(16, 1.0f);
    if (c.rank() == 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const Work work = c.AllReduce(HostView(data.data(), 16), ReduceOp::kSum, stream.get());
    if (c.rank() == 0) {
      const absl::Status early = work.Wait(absl::Milliseconds(20));
      if (!absl::IsDeadlineExceeded(early) || !absl::StrContains(early.message(), "all_reduce")) {
        return absl::InternalError(absl::StrCat("early wait: ", early.ToString()));
      }
      if (!absl::IsUnavailable(work.status())) return absl::InternalError("status while running");
    }
    if (absl::Status s = work.Wait(); !s.ok()) return s;
    out[c.rank()] = data[0];
    return absl::OkStatus();
  }));
  CHECK(out[0] == 2.0f);
  CHECK(out[1] == 2.0f);
}

TEST_CASE("A peer killed mid-collective fails the others' Work naming the operation, no hang",
          "[comm][work][failure]") {
  testing::TempDir dir;
  const int world = 3;
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      FileKvStore store(dir.path());
      CommOptions options;
      options.timeout = absl::Seconds(5);
      auto comm = CreateCommunicator(Device::Cpu(), store, r, world, options);
      if (!comm.ok()) _exit(10);
      std::unique_ptr<Stream> stream = CreateCpuStream(true);
      std::vector<float> data(3 << 20, 1.0f);  // 12 MiB: the ring is mid-flight for a while.
      const BufferView full = HostView(data.data(), data.size());
      const BufferView mine = full.Slice(static_cast<size_t>(r) << 20, 1 << 20);
      if (!(*comm)->ReduceScatter(full, mine, ReduceOp::kSum, stream.get()).Wait().ok()) _exit(11);
      if (r == 2) {
        // Killed while its peers are inside the second reduce-scatter, waiting for its data.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        kill(getpid(), SIGKILL);
      }
      const absl::Status s =
          (*comm)->ReduceScatter(full, mine, ReduceOp::kSum, stream.get()).Wait();
      const std::string m(s.message());
      const bool named = absl::StrContains(m, absl::StrCat("rank ", r, " of 3")) &&
                         absl::StrContains(m, "reduce-scatter");
      if (absl::IsAborted(s) && named) _exit(20);
      if (absl::IsDeadlineExceeded(s) && named) _exit(21);
      _exit(s.ok() ? 30 : 22);
    }
    pids.push_back(pid);
  }
  const std::vector<int> codes = testing::WaitForChildren(pids, 20);
  CHECK(codes[2] == -SIGKILL);
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << " exit " << codes[r]);
    CHECK((codes[r] == 20 || codes[r] == 21));
  }
}

}  // namespace
}  // namespace zerorun
