// Benchmark (label bench): launcher latencies on this machine, each a median of several runs.
//   launch:  `zerorun` start -> all 8 ranks running, 8 ranks over 2 agents (127.0.0.2, .3)
//   failure: one rank's death -> the last rank gone, 3 agents x 2 ranks
//   status:  `zerorun status --json` wall time with 8 ranks reporting every 100 ms
// DeepSpeed's launcher polls its children once a second and has no cross-node propagation.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "bench/bench_agents.h"

using zerorun::bench::Agents;
using zerorun::bench::Median;
using zerorun::bench::ReadStamp;
using zerorun::bench::RealtimeNs;
using zerorun::testing::ChildProcess;
using zerorun::testing::Run;
using zerorun::testing::TempDir;

int main() {
  const std::map<std::string, std::string> env = {{"ZR_HOME", "/tmp/zerorun-bench-home"}};
  std::vector<double> launch_ms, failure_ms, status_ms;
  {
    Agents agents(2, 4);
    for (int i = 0; i < 7; ++i) {
      TempDir stamps;
      const int64_t t0 = RealtimeNs();
      ChildProcess zr(agents.Zerorun(stamps.path(), {"--run-ms", "300"}), env);
      if (zr.Wait(60) != 0) {
        std::printf("launch run failed:\n%s", zr.Output().c_str());
        return 1;
      }
      int64_t last = 0;
      for (int r = 0; r < 8; ++r) {
        last = std::max(last, ReadStamp(stamps.path() + "/rank_" + std::to_string(r) + ".start"));
      }
      launch_ms.push_back((last - t0) / 1e6);
    }
  }
  {
    Agents agents(3, 2);
    for (int i = 0; i < 5; ++i) {
      TempDir stamps;
      ChildProcess zr(agents.Zerorun(stamps.path(), {"--run-ms", "60000", "--fail-rank", "4",
                                                     "--fail-after-ms", "500", "--kill-self", "9"}),
                      env);
      if (zr.Wait(60) != 137) {
        std::printf("failure run did not exit 137:\n%s", zr.Output().c_str());
        return 1;
      }
      const int64_t died = ReadStamp(stamps.path() + "/rank_4.exit");
      int64_t last = 0;
      for (int r = 0; r < 6; ++r) {
        if (r != 4) {
          last = std::max(last, ReadStamp(stamps.path() + "/rank_" + std::to_string(r) + ".exit"));
        }
      }
      failure_ms.push_back((last - died) / 1e6);
    }
  }
  {
    Agents agents(2, 4);
    TempDir stamps;
    ChildProcess zr(agents.Zerorun(stamps.path(), {"--run-ms", "60000", "--report"}), env);
    zr.WaitForOutput("'zerorun status", 30);
    usleep(500 * 1000);
    for (int i = 0; i < 20; ++i) {
      const auto r = Run({ZR_TEST_ZERORUN, "status", "--json"}, env);
      if (r.exit_code != 0) {
        std::printf("status failed: %s\n", r.err.c_str());
        return 1;
      }
      status_ms.push_back(r.wall_ms);
    }
    zr.Signal(SIGINT);
    zr.Wait(30);
  }
  std::printf("zerorun launcher latencies on this machine (medians):\n");
  std::printf("  launch, 8 ranks over 2 agents, zerorun start -> last rank running: %.0f ms\n",
              Median(launch_ms));
  std::printf("  failure propagation, 3 nodes: rank death -> last rank gone:       %.0f ms\n",
              Median(failure_ms));
  std::printf("  zerorun status --json (process start to exit), 8 reporting ranks: %.0f ms\n",
              Median(status_ms));
  std::printf("  (DeepSpeed: 1 s child poll per node, no cross-node propagation)\n");
  return 0;
}
