// Benchmark (label bench): bus bandwidth of zerorun's ring reduce-scatter and all-gather
// against Gloo's own all-reduce, 2 ranks over loopback TCP, 1-256 MiB.
// busbw: all-reduce = bytes/time * 2(n-1)/n; reduce-scatter, all-gather = bytes/time * (n-1)/n.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "zerorun/comm.h"

int main(int argc, char** argv) {
  zerorun::CommOptions options;  // argv[1]: ring segment bytes (default 1 MiB).
  if (argc > 1) options.segment_bytes = static_cast<size_t>(std::atol(argv[1]));
  const int world = 2;
  zerorun::InMemoryKvStore store;
  std::vector<std::unique_ptr<zerorun::Communicator>> comms(world);
  {
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        auto c = zerorun::CreateGlooCommunicator(store, r, world, options);
        if (c.ok()) comms[r] = *std::move(c);
      });
    }
    for (auto& t : threads) t.join();
  }
  for (auto& c : comms) {
    if (!c) {
      std::printf("cannot connect\n");
      return 1;
    }
  }
  std::printf("%10s %14s %14s %14s   (bus GB/s, 2 ranks, medians of 5)\n", "size", "allreduce",
              "reduce-scatter", "all-gather");
  for (size_t mib : {1, 4, 16, 64, 256}) {
    const size_t n = mib << 18;  // floats
    std::vector<std::vector<float>> data(world, std::vector<float>(n, 1.0f));
    double t[3] = {0, 0, 0};
    for (int op = 0; op < 3; ++op) {
      std::vector<double> times;
      for (int rep = 0; rep < 5; ++rep) {
        std::vector<double> per_rank(world);
        std::vector<std::thread> threads;
        for (int r = 0; r < world; ++r) {
          threads.emplace_back([&, r] {
            const auto start = std::chrono::steady_clock::now();
            absl::Status s;
            const zerorun::BufferView full = zerorun::HostView(data[r].data(), n);
            const zerorun::BufferView mine = full.Slice(r * (n / world), n / world);
            if (op == 0) s = comms[r]->AllReduce(full, zerorun::ReduceOp::kSum).Wait();
            if (op == 1) s = comms[r]->ReduceScatter(full, mine, zerorun::ReduceOp::kSum).Wait();
            if (op == 2) s = comms[r]->AllGather(mine, full).Wait();
            per_rank[r] =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          });
        }
        for (auto& th : threads) th.join();
        times.push_back(*std::max_element(per_rank.begin(), per_rank.end()));
      }
      std::sort(times.begin(), times.end());
      t[op] = times[times.size() / 2];
    }
    const double bytes = static_cast<double>(n) * sizeof(float);
    const double f = (world - 1.0) / world;
    std::printf("%7zu MiB %14.2f %14.2f %14.2f\n", mib, bytes / t[0] * 2 * f / 1e9,
                bytes / t[1] * f / 1e9, bytes / t[2] * f / 1e9);
  }
  return 0;
}
