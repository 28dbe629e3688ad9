// Gloo communicator: every collective at world sizes 1-5 (ranks as threads over loopback TCP)
// against a single-process reference; peers that die or never come give errors, not hangs.
#include "zerorun/comm.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <thread>
#include <vector>

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
        return c.ReduceScatter(data[c.rank()].data(), shard, ReduceOp::kSum);
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
    return c.ReduceScatter(data[c.rank()].data(), shard, ReduceOp::kAvg);
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
      return c.AllGather(data[c.rank()].data(), shard);
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
    if (absl::Status s = c.AllReduce(sum[c.rank()].data(), n, ReduceOp::kSum); !s.ok()) return s;
    if (absl::Status s = c.AllReduce(avg[c.rank()].data(), n, ReduceOp::kAvg); !s.ok()) return s;
    if (absl::Status s = c.Broadcast(bcast[c.rank()].data(), n, 2); !s.ok()) return s;
    return c.Barrier();
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
  auto bad = SpawnRanks(1, {}, [](Communicator& c) { return c.Broadcast(nullptr, 1, 3); });
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
      if (!(*comm)->ReduceScatter(data.data(), 4096, ReduceOp::kSum).ok()) _exit(11);
      if (r == 2) _exit(0);  // Dies before the second collective.
      const absl::Status s = (*comm)->ReduceScatter(data.data(), 4096, ReduceOp::kSum);
      if (s.code() == absl::StatusCode::kAborted) _exit(20);
      if (s.code() == absl::StatusCode::kDeadlineExceeded) _exit(21);
      _exit(s.ok() ? 30 : 22);
    }
    pids.push_back(pid);
  }
  std::vector<int> codes;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);  // Our child: end it by pid, then report the hang.
        waitpid(pid, &status, 0);
        break;
      }
      usleep(10 * 1000);
    }
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  CHECK(codes[2] == 0);
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r << " exit " << codes[r]);
    CHECK((codes[r] == 20 || codes[r] == 21));
  }
}

}  // namespace
}  // namespace zerorun
