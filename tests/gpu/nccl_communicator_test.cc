// GPU tests (label gpu; need a CUDA device): the NCCL communicator. World 1 on the one GPU (NCCL
// refuses two ranks on one device): every collective on device views, on a caller's stream and
// without, against the single-process result (sum and average of one rank: the input; bf16 in to
// fp32 out: the exact widening). And the no-hang guarantee at init: a world of 2 whose rank 1
// never arrives, or arrives (a process) and never joins, ends in DeadlineExceeded naming it
// within the timeout, the communicator aborted.
#include <cuda_runtime.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "support/temp_dir.h"
#include "zerorun/comm.h"
#include "zerorun/device.h"
#include "zerorun/dtype.h"

namespace zerorun {
namespace {

template <typename T>
std::vector<T> ToHost(const BufferView& v) {
  std::vector<T> out(v.count);
  REQUIRE(cudaMemcpy(out.data(), v.data, v.bytes(), cudaMemcpyDeviceToHost) == cudaSuccess);
  return out;
}

template <typename T>
void FromHost(const std::vector<T>& in, const BufferView& v) {
  REQUIRE(cudaMemcpy(v.data, in.data(), v.bytes(), cudaMemcpyHostToDevice) == cudaSuccess);
}

TEST_CASE("NCCL at world 1: every collective on device views, on a stream and without",
          "[gpu][nccl]") {
  InMemoryKvStore store;
  CommOptions options;
  options.timeout = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<Communicator>> comm =
      CreateCommunicator(Device::Cuda(0), store, 0, 1, options);
  REQUIRE(comm.ok());
  Communicator& c = **comm;
  CHECK(std::string(c.backend()) == "nccl");
  absl::StatusOr<std::unique_ptr<Allocator>> device = CreateCudaAllocator(MemoryKind::kDevice, 0);
  absl::StatusOr<std::unique_ptr<Stream>> stream = CreateCudaStream(0);
  REQUIRE(device.ok());
  REQUIRE(stream.ok());
  constexpr size_t kN = 1 << 20;
  std::vector<float> values(kN);
  for (size_t i = 0; i < kN; ++i) values[i] = 0.001f * static_cast<float>(i) - 7.0f;

  absl::StatusOr<Buffer> f = Buffer::Allocate(**device, kN, DType::kFp32);
  absl::StatusOr<Buffer> h = Buffer::Allocate(**device, kN, DType::kBf16);
  absl::StatusOr<Buffer> wide = Buffer::Allocate(**device, kN, DType::kFp32);
  REQUIRE(f.ok());
  REQUIRE(h.ok());
  REQUIRE(wide.ok());
  std::vector<uint16_t> halves(kN);
  FromFloat(DType::kBf16, values.data(), halves.data(), kN);

  for (Stream* s : {static_cast<Stream*>(nullptr), stream->get()}) {
    INFO("on a stream: " << (s != nullptr));
    FromHost(values, f->view());
    REQUIRE(c.AllReduce(f->view(), ReduceOp::kSum, s).Wait(absl::Seconds(30)).ok());
    REQUIRE(c.AllReduce(f->view(), ReduceOp::kAvg, s).Wait(absl::Seconds(30)).ok());
    if (s != nullptr) REQUIRE(s->Synchronize().ok());
    CHECK(ToHost<float>(f->view()) == values);

    FromHost(halves, h->view());
    REQUIRE(c.ReduceScatter(h->view(), wide->view(), ReduceOp::kSum, s).Wait().ok());
    if (s != nullptr) REQUIRE(s->Synchronize().ok());
    std::vector<float> widened(kN);
    ToFloat(DType::kBf16, halves.data(), widened.data(), kN);
    CHECK(ToHost<float>(wide->view()) == widened);

    REQUIRE(c.AllGather(h->view(), h->view(), s).Wait().ok());
    REQUIRE(c.Broadcast(h->view(), 0, s).Wait().ok());
    REQUIRE(c.Barrier(s).Wait().ok());
    if (s != nullptr) REQUIRE(s->Synchronize().ok());
    CHECK(ToHost<uint16_t>(h->view()) == halves);
  }
  // Host views are refused at once, naming the rank and the fix.
  std::vector<float> on_host(4);
  const Work refused = c.AllReduce(HostView(on_host.data(), 4), ReduceOp::kSum);
  CHECK(absl::IsInvalidArgument(refused.status()));
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("rank 0"));
  CHECK_THAT(std::string(c.reduction16()), Catch::Contains("NCCL"));
}

TEST_CASE("NCCL init with a rank that never arrives ends naming it, within the timeout",
          "[gpu][nccl][watchdog]") {
  testing::TempDir dir;
  FileKvStore store(dir.path());
  CommOptions options;
  options.timeout = absl::Seconds(3);
  options.name = "alone";
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<Communicator>> comm =
      CreateNcclCommunicator(store, 0, 2, 0, options);
  const absl::Duration took = absl::Now() - start;
  INFO(comm.status().ToString());
  CHECK(absl::IsDeadlineExceeded(comm.status()));
  CHECK_THAT(std::string(comm.status().message()), Catch::Contains("rank(s) 1 never arrived"));
  CHECK_THAT(std::string(comm.status().message()), Catch::Contains("aborted"));
  CHECK(took < absl::Seconds(10));

  // A second process takes the id as rank 1 and then never joins (stopped).
  options.name = "stuck";
  const pid_t peer = fork();
  REQUIRE(peer >= 0);
  if (peer == 0) {
    FileKvStore mine(dir.path());
    static_cast<void>(mine.Set("stuck/nccl/arrived/1", "1"));
    static_cast<void>(mine.Get("stuck/nccl/id", absl::Seconds(30)));
    raise(SIGSTOP);
    _exit(0);
  }
  const absl::Time again = absl::Now();
  comm = CreateNcclCommunicator(store, 0, 2, 0, options);
  INFO(comm.status().ToString());
  CHECK(absl::IsDeadlineExceeded(comm.status()));
  CHECK_THAT(std::string(comm.status().message()), Catch::Contains("every rank arrived"));
  CHECK(absl::Now() - again < absl::Seconds(10));
  kill(peer, SIGKILL);
  int status = 0;
  CHECK(waitpid(peer, &status, 0) == peer);
}

}  // namespace
}  // namespace zerorun
