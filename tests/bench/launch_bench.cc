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

#include "support/child_process.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

using zerorun::testing::ChildProcess;
using zerorun::testing::Run;
using zerorun::testing::TempDir;

namespace {

int64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t ReadStamp(const std::string& path) {
  std::ifstream in(path);
  int64_t ns = 0;
  in >> ns;
  return ns;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Agents {
  TempDir dir;
  std::vector<std::unique_ptr<ChildProcess>> procs;
  std::string hostfile;
  Agents(int nodes, int slots) {
    std::string yaml = "hosts:\n";
    for (int i = 0; i < nodes; ++i) {
      const std::string address = "127.0.0." + std::to_string(2 + i);
      procs.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{ZR_TEST_ZERORUND, "--listen", address + ":0",
                                   "--allow-root-ranks"},
          std::map<std::string, std::string>{{"ZR_HOME", dir.path() + "/n" + std::to_string(i)}}));
      procs.back()->WaitForOutput("(port ", 10);
      std::smatch m;
      const std::string out = procs.back()->Output();
      std::regex_search(out, m, std::regex("\\(port (\\d+)\\)"));
      yaml += "  - {name: n" + std::to_string(i) + ", address: " + address +
              ", agent_port: " + m[1].str() + ", slots: " + std::to_string(slots) + "}\n";
    }
    hostfile = dir.Write("hosts.yaml", yaml);
    dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  }
  std::vector<std::string> Zerorun(const std::string& env_dir,
                                   const std::vector<std::string>& rank_args) const {
    std::vector<std::string> argv = {
        ZR_TEST_ZERORUN, "--hostfile", hostfile,         "--config", dir.path() + "/ds.json",
        "--device",      "cpu",        "--grace-period", "5",        ZR_TEST_RANK,
        "--env-dir",     env_dir,      "--stamps"};
    argv.insert(argv.end(), rank_args.begin(), rank_args.end());
    return argv;
  }
};

}  // namespace

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
