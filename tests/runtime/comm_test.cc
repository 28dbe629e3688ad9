// Gloo communicator: every collective at world sizes 1-5 (ranks as threads over loopback TCP)
// against a single-process reference; peers that die or never come give errors, not hangs.
#include "zerorun/comm.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"

namespace zerorun {
namespace {

// Runs fn(comm) on `world` threads, each with its own communicator over one InMemoryKvStore.
// Returns each rank's status; assertions stay on the main thread (Catch2 is not thread-safe).
std::vector<absl::Status> SpawnRanks(int world, const CommOptions& options,
                                     const std::function<absl::Status(Communicator&)>& fn) {
  InMemoryKvStore store;
  std::vector<absl::Status> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = CreateGlooCommunicator(store, r, world, options);
      results[r] = comm.ok() ? fn(**comm) : comm.status();
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

// The in-place forms the engine uses: rank()'s shard of a world-sized buffer.
absl::Status ReduceScatterInPlace(Communicator& c, std::vector<float>& data, size_t shard,
                                  ReduceOp op) {
  const BufferView full = HostView(data.data(), shard * c.world_size());
  return c.ReduceScatter(full, full.Slice(c.rank() * shard, shard), op).Wait();
}
absl::Status AllGatherInPlace(Communicator& c, BufferView full) {
  const size_t shard = full.count / c.world_size();
  return c.AllGather(full.Slice(c.rank() * shard, shard), full).Wait();
}

float Value(int rank, size_t i) { return static_cast<float>((rank + 1) * 0.5 + (i % 13) * 0.25); }

void RequireAllOk(const std::vector<absl::Status>& results) {
  for (const absl::Status& s : results) {
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
}

TEST_CASE("Ring reduce-scatter matches a single-process sum at world sizes 1-5", "[comm]") {
  for (int world = 1; world <= 5; ++world) {
    for (size_t shard : {size_t{1}, size_t{37}, size_t{1000}}) {
      INFO("world " << world << " shard " << shard);
      CommOptions options;
      options.segment_bytes = 64;  // 16 floats: many segments per chunk.
      std::vector<std::vector<float>> data(world);
      for (int r = 0; r < world; ++r) {
        for (size_t i = 0; i < shard * world; ++i) data[r].push_back(Value(r, i));
      }
      RequireAllOk(SpawnRanks(world, options, [&](Communicator& c) {
        return ReduceScatterInPlace(c, data[c.rank()], shard, ReduceOp::kSum);
      }));
      for (int r = 0; r < world; ++r) {
        for (size_t i = 0; i < shard; ++i) {
          const size_t g = r * shard + i;
          double expected = 0;
          for (int q = 0; q < world; ++q) expected += Value(q, g);
          REQUIRE(data[r][g] == Approx(expected).epsilon(1e-6));
        }
      }
    }
  }
}

TEST_CASE("Reduce-scatter with kAvg divides the owned shard by the world size", "[comm]") {
  const int world = 3;
  const size_t shard = 5;
  std::vector<std::vector<float>> data(world, std::vector<float>(shard * world, 3.0f));
  RequireAllOk(SpawnRanks(world, {}, [&](Communicator& c) {
    return ReduceScatterInPlace(c, data[c.rank()], shard, ReduceOp::kAvg);
  }));
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < shard; ++i) REQUIRE(data[r][r * shard + i] == Approx(3.0f));
  }
}

TEST_CASE("Ring all-gather assembles every rank's shard in place at world sizes 1-5", "[comm]") {
  for (int world = 1; world <= 5; ++world) {
    const size_t shard = 29;
    CommOptions options;
    options.segment_bytes = 40;
    std::vector<std::vector<float>> data(world, std::vector<float>(shard * world, -1.0f));
    for (int r = 0; r < world; ++r) {
      for (size_t i = 0; i < shard; ++i) data[r][r * shard + i] = Value(r, i);
    }
    RequireAllOk(SpawnRanks(world, options, [&](Communicator& c) {
      return AllGatherInPlace(c, HostView(data[c.rank()].data(), shard * world));
    }));
    for (int r = 0; r < world; ++r) {
      for (int q = 0; q < world; ++q) {
        for (size_t i = 0; i < shard; ++i) REQUIRE(data[r][q * shard + i] == Value(q, i));
      }
    }
  }
}

TEST_CASE("All-reduce, broadcast and barrier agree with the reference", "[comm]") {
  const int world = 4;
  const size_t n = 1001;
  std::vector<std::vector<float>> sum(world), avg(world), bcast(world);
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < n; ++i) {
      sum[r].push_back(Value(r, i));
      avg[r].push_back(Value(r, i));
      bcast[r].push_back(r == 2 ? Value(7, i) : 0.0f);
    }
  }
  RequireAllOk(SpawnRanks(world, {}, [&](Communicator& c) -> absl::Status {
    const int r = c.rank();
    if (absl::Status s = c.AllReduce(HostView(sum[r].data(), n), ReduceOp::kSum).Wait(); !s.ok()) {
      return s;
    }
    if (absl::Status s = c.AllReduce(HostView(avg[r].data(), n), ReduceOp::kAvg).Wait(); !s.ok()) {
      return s;
    }
    if (absl::Status s = c.Broadcast(HostView(bcast[r].data(), n), 2).Wait(); !s.ok()) return s;
    return c.Barrier().Wait();
  }));
  for (int r = 0; r < world; ++r) {
    for (size_t i = 0; i < n; ++i) {
      double expected = 0;
      for (int q = 0; q < world; ++q) expected += Value(q, i);
      REQUIRE(sum[r][i] == Approx(expected));
      REQUIRE(avg[r][i] == Approx(expected / world));
      REQUIRE(bcast[r][i] == Value(7, i));
    }
  }
  auto bad = SpawnRanks(1, {}, [](Communicator& c) {
    return c.Broadcast(HostView(static_cast<float*>(nullptr), 1), 3).Wait();
  });
  CHECK(bad[0].code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("A peer that never arrives is DeadlineExceeded naming the key", "[comm][failure]") {
  InMemoryKvStore store;
  CommOptions options;
  options.timeout = absl::Milliseconds(500);
  auto comm = CreateGlooCommunicator(store, 0, 2, options);
  REQUIRE_FALSE(comm.ok());
  CHECK(comm.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK_THAT(std::string(comm.status().message()), Catch::Contains("rank 0 of 2"));
}

TEST_CASE("A peer process that dies mid-job makes the others fail, never hang", "[comm][failure]") {
  testing::TempDir dir;
  const int world = 3;
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      FileKvStore store(dir.path());
      CommOptions options;
      options.timeout = absl::Seconds(5);
      auto comm = CreateGlooCommunicator(store, r, world, options);
      if (!comm.ok()) _exit(10);
      std::vector<float> data(3 * 4096, 1.0f);
      if (!ReduceScatterInPlace(**comm, data, 4096, ReduceOp::kSum).ok()) _exit(11);
      if (r == 2) _exit(0);  // Dies before the second collective.
      const absl::Status s = ReduceScatterInPlace(**comm, data, 4096, ReduceOp::kSum);
      if (s.code() == absl::StatusCode::kAborted) _exit(20);
      if (s.code() == absl::StatusCode::kDeadlineExceeded) _exit(21);
      _exit(s.ok() ? 30 : 22);
    }
    pids.push_back(pid);
  }
  const std::vector<int> codes = testing::WaitForChildren(pids, 20);
  CHECK(codes[2] == 0);
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << " exit " << codes[r]);
    CHECK((codes[r] == 20 || codes[r] == 21));
  }
}

}  // namespace
}  // namespace zerorun

namespace zerorun {
namespace {

TEST_CASE("bf16 and fp16 conversions round to nearest even and keep inf and NaN", "[dtype]") {
  CHECK(FloatToBf16(1.0f) == 0x3f80);
  CHECK(FloatToBf16(BitsFloat(0x3f808000)) == 0x3f80);  // Halfway, even below: down.
  CHECK(FloatToBf16(BitsFloat(0x3f818000)) == 0x3f82);  // Halfway, odd below: up.
  CHECK(FloatToBf16(BitsFloat(0x3f808001)) == 0x3f81);  // Above halfway: up.
  CHECK(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
  CHECK(Bf16ToFloat(FloatToBf16(INFINITY)) == INFINITY);
  CHECK(FloatToFp16(65504.0f) == 0x7bff);
  CHECK(Fp16ToFloat(FloatToFp16(65520.0f)) == INFINITY);  // Overflow: what loss scaling detects.
  CHECK(FloatToFp16(1.0f + 1.0f / 2048) == 0x3c00);       // Halfway between 1 and 1 + 2^-10.
  CHECK(Fp16ToFloat(FloatToFp16(6e-8f)) == Approx(5.96e-8f).epsilon(1e-2));  // Subnormal kept.
  std::vector<float> x = {0.1f, -2.5f, 3.0e5f, 1e-3f};
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  for (DType d : {DType::kBf16, DType::kFp16}) {
    FromFloat(d, x.data(), h.data(), x.size());
    ToFloat(d, h.data(), back.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const float want =
          d == DType::kBf16 ? Bf16ToFloat(FloatToBf16(x[i])) : Fp16ToFloat(FloatToFp16(x[i]));
      CHECK(back[i] == want);
    }
  }
}

TEST_CASE("16-bit reduce-scatter sums in fp32 per hop, 16-bit all-gather is exact", "[comm]") {
  for (DType dtype : {DType::kBf16, DType::kFp16}) {
    for (int world = 1; world <= 4; ++world) {
      const size_t shard = 301;
      INFO(DTypeName(dtype) << " world " << world);
      CommOptions options;
      options.segment_bytes = 128;
      std::vector<std::vector<uint16_t>> data(world), gather(world);
      std::vector<std::vector<float>> out(world, std::vector<float>(shard));
      for (int r = 0; r < world; ++r) {
        for (size_t i = 0; i < shard * world; ++i) {
          const float v = Value(r, i) * (i % 2 ? 1.0f : -0.37f);
          data[r].push_back(dtype == DType::kBf16 ? FloatToBf16(v) : FloatToFp16(v));
        }
        gather[r] = data[r];
      }
      const std::vector<std::vector<uint16_t>> input = data;
      RequireAllOk(SpawnRanks(world, options, [&](Communicator& c) {
        const int r = c.rank();
        const BufferView in = HostView(data[r].data(), shard * world, dtype);
        if (absl::Status s =
                c.ReduceScatter(in, HostView(out[r].data(), shard), ReduceOp::kAvg).Wait();
            !s.ok()) {
          return s;
        }
        return AllGatherInPlace(c, HostView(gather[r].data(), shard * world, dtype));
      }));
      const double ulp = dtype == DType::kBf16 ? 1.0 / 256 : 1.0 / 2048;
      for (int r = 0; r < world; ++r) {
        for (size_t i = 0; i < shard; ++i) {
          const size_t g = r * shard + i;
          double sum = 0, magnitude = 0;
          for (int q = 0; q < world; ++q) {
            const float v =
                dtype == DType::kBf16 ? Bf16ToFloat(input[q][g]) : Fp16ToFloat(input[q][g]);
            sum += v;
            magnitude += std::fabs(v);
          }
          // At most world - 2 roundings of partial sums (the last hop is not rounded).
          REQUIRE(std::fabs(out[r][i] - sum / world) <= (world - 1) * ulp * magnitude / world);
        }
        for (size_t i = 0; i < shard * world; ++i) {
          REQUIRE(gather[r][i] == input[i / shard][i]);  // Everyone's own shard, bit for bit.
        }
      }
    }
  }
  std::vector<float> out(4);
  std::vector<uint16_t> data(4);
  RequireAllOk(SpawnRanks(1, {}, [&](Communicator& c) {
    // fp16 in cannot reduce into bf16 out: only fp32 or its own dtype.
    const BufferView in = HostView(data.data(), 4, DType::kFp16);
    const BufferView wrong = HostView(reinterpret_cast<uint16_t*>(out.data()), 4, DType::kBf16);
    return c.ReduceScatter(in, wrong, ReduceOp::kSum).Wait().code() ==
                   absl::StatusCode::kInvalidArgument
               ? absl::OkStatus()
               : absl::InternalError("fp16 reduced into bf16");
  }));
}

}  // namespace
}  // namespace zerorun
