// Benchmark helpers shared by the launcher benchmarks: loopback zerorund agents on 127.0.0.2..,
// plaintext or mTLS (certificates from `zerorun cluster init`), the `zerorun` command for the
// test rank program against them, wall-clock stamps and medians.
#ifndef ZERORUN_TESTS_BENCH_BENCH_AGENTS_H_
#define ZERORUN_TESTS_BENCH_BENCH_AGENTS_H_

#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::bench {

inline int64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline int64_t ReadStamp(const std::string& path) {
  std::ifstream in(path);
  int64_t ns = 0;
  in >> ns;
  return ns;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Agents {
  testing::TempDir dir;
  std::vector<std::unique_ptr<testing::ChildProcess>> procs;
  std::vector<std::string> addresses;  // host:port of each agent.
  std::string hostfile;
  bool tls;
  // `nodes` agents with `slots` CPU slots each; with `tls`, a cluster CA in dir/cluster with a
  // certificate per node and one for the user running the benchmark (a root zerorund runs the
  // ranks as the certificate's user, so it must be a local account).
  Agents(int nodes, int slots, bool with_tls = false) : tls(with_tls) {
    if (tls) {
      std::vector<std::string> init = {ZR_TEST_ZERORUN,         "cluster", "init",
                                       dir.path() + "/cluster", "--user",  User()};
      for (int i = 0; i < nodes; ++i) {
        init.insert(init.end(), {"--node", "127.0.0." + std::to_string(2 + i)});
      }
      testing::Run(init, {});
    }
    std::string yaml = "hosts:\n";
    for (int i = 0; i < nodes; ++i) {
      const std::string address = "127.0.0." + std::to_string(2 + i);
      std::vector<std::string> argv = {ZR_TEST_ZERORUND, "--listen", address + ":0",
                                       "--allow-root-ranks"};
      if (tls) argv.insert(argv.end(), {"--tls-dir", dir.path() + "/cluster/nodes/" + address});
      if (!tls) argv.push_back("--anonymous-tcp");
      procs.push_back(std::make_unique<testing::ChildProcess>(
          argv,
          std::map<std::string, std::string>{{"ZR_HOME", dir.path() + "/n" + std::to_string(i)}}));
      procs.back()->WaitForOutput("(port ", 10);
      std::smatch m;
      const std::string out = procs.back()->Output();
      std::regex_search(out, m, std::regex("\\(port (\\d+)\\)"));
      addresses.push_back(address + ":" + m[1].str());
      yaml += "  - {name: n" + std::to_string(i) + ", address: " + address +
              ", agent_port: " + m[1].str() + ", slots: " + std::to_string(slots) + "}\n";
    }
    hostfile = dir.Write("hosts.yaml", yaml);
    dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  }
  static std::string User() { return getpwuid(geteuid())->pw_name; }
  std::string user_tls_dir() const { return dir.path() + "/cluster/users/" + User(); }
  std::vector<std::string> Zerorun(const std::string& env_dir,
                                   const std::vector<std::string>& rank_args) const {
    std::vector<std::string> argv = {
        ZR_TEST_ZERORUN, "--hostfile", hostfile,         "--config", dir.path() + "/ds.json",
        "--device",      "cpu",        "--grace-period", "5"};
    if (tls) argv.insert(argv.end(), {"--tls-dir", user_tls_dir()});
    argv.insert(argv.end(), {ZR_TEST_RANK, "--env-dir", env_dir, "--stamps"});
    argv.insert(argv.end(), rank_args.begin(), rank_args.end());
    return argv;
  }
};

}  // namespace zerorun::bench

#endif  // ZERORUN_TESTS_BENCH_BENCH_AGENTS_H_
