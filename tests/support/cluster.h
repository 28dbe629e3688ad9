// Test helper: three (or N) zerorund agents bound to 127.0.0.2, .3, ... (nodes on loopback), a
// hostfile naming them (2 CPU slots each), a private ZR_HOME, and `zerorun` runs of the test
// rank program against them. Every process is the test's own and ended by pid.
#ifndef ZERORUN_TESTS_SUPPORT_CLUSTER_H_
#define ZERORUN_TESTS_SUPPORT_CLUSTER_H_

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/temp_dir.h"

namespace zerorun::testing {

// Three agents, a hostfile naming them (2 CPU slots each), and a private ZR_HOME.
class Cluster {
 public:
  // `agent_args`: more zerorund flags (e.g. --retention 0).
  explicit Cluster(int nodes = 3, const std::string& secret = "",
                   std::vector<std::string> agent_args = {})
      : agent_args_(std::move(agent_args)) {
    std::string yaml = "hosts:\n";
    for (int i = 0; i < nodes; ++i) {
      env_.push_back({{"ZR_HOME", home_.path() + "/node" + std::to_string(i)}});
      if (!secret.empty()) env_.back()["ZR_SECRET"] = secret;
      addresses_.push_back("127.0.0." + std::to_string(2 + i) + ":0");
      agents_.emplace_back();
      StartAgent(i);
      yaml += "  - {name: node-" + std::string(1, static_cast<char>('a' + i)) +
              ", address: 127.0.0." + std::to_string(2 + i) +
              ", agent_port: " + addresses_[i].substr(addresses_[i].rfind(':') + 1) +
              ", slots: 2}\n";
    }
    hostfile_ = home_.Write("hosts.yaml", yaml);
    config_ = home_.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
    env_dir_ = home_.path() + "/env";
    mkdir(env_dir_.c_str(), 0755);
  }

  // zerorun run ... test_rank <rank args>, as a child.
  std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& zerorun_args,
                                      const std::vector<std::string>& rank_args,
                                      const std::map<std::string, std::string>& extra_env = {}) {
    std::vector<std::string> argv = {ZR_TEST_ZERORUN};
    argv.insert(argv.end(), zerorun_args.begin(), zerorun_args.end());
    // Defaults for the flags the test did not give.
    const std::pair<const char*, std::string> defaults[] = {{"--hostfile", hostfile_},
                                                            {"--config", config_},
                                                            {"--device", "cpu"},
                                                            {"--grace-period", "2"}};
    for (const auto& [flag, value] : defaults) {
      if (std::find(zerorun_args.begin(), zerorun_args.end(), flag) == zerorun_args.end()) {
        argv.push_back(flag);
        argv.push_back(value);
      }
    }
    argv.push_back(ZR_TEST_RANK);
    argv.push_back("--env-dir");
    argv.push_back(env_dir_);
    argv.insert(argv.end(), rank_args.begin(), rank_args.end());
    std::map<std::string, std::string> env = {{"ZR_HOME", home_.path() + "/launcher"}};
    for (const auto& [k, v] : extra_env) env[k] = v;
    return std::make_unique<ChildProcess>(argv, env);
  }

  // Environment a rank recorded, as KEY -> VALUE, plus "argv".
  std::map<std::string, std::string> RankEnv(int rank) const {
    std::map<std::string, std::string> env;
    std::ifstream in(env_dir_ + "/rank_" + std::to_string(rank) + ".env");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("argv:", 0) == 0) {
        env["argv"] = line.substr(5);
      } else if (size_t eq = line.find('='); eq != std::string::npos) {
        env[line.substr(0, eq)] = line.substr(eq + 1);
      }
    }
    return env;
  }

  // Pids the ranks recorded.
  std::vector<pid_t> RankPids() const {
    std::vector<pid_t> pids;
    for (int rank = 0; rank < 8; ++rank) {
      std::ifstream in(env_dir_ + "/rank_" + std::to_string(rank) + ".pid");
      pid_t pid = 0;
      if (in >> pid) pids.push_back(pid);
    }
    return pids;
  }

  bool AllRanksGone() const {
    for (pid_t pid : RankPids()) {
      if (!ProcessGone(pid)) return false;
    }
    return true;
  }

  // Starts (or, after it ended, restarts) agent i on its address and state; a restart keeps the
  // port, as a systemd restart would.
  void StartAgent(int i) {
    std::vector<std::string> argv = {ZR_TEST_ZERORUND, "--listen", addresses_[i],
                                     "--allow-root-ranks", "--anonymous-tcp"};
    argv.insert(argv.end(), agent_args_.begin(), agent_args_.end());
    agents_[i] = std::make_unique<ChildProcess>(argv, env_[i]);  // CI runs the tests as root.
    REQUIRE(agents_[i]->WaitForOutput("(port ", 10));
    std::smatch match;
    const std::string out = agents_[i]->Output();
    REQUIRE(std::regex_search(out, match, std::regex("\\(port (\\d+)\\)")));
    addresses_[i] = addresses_[i].substr(0, addresses_[i].rfind(':') + 1) + match[1].str();
  }

  ChildProcess& agent(int i) { return *agents_[i]; }
  const std::string& hostfile() const { return hostfile_; }
  const std::string& config() const { return config_; }
  std::string launcher_home() const { return home_.path() + "/launcher"; }
  const TempDir& dir() const { return home_; }

 private:
  const std::vector<std::string> agent_args_;  // First: the constructor starts the agents.
  TempDir home_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::vector<std::map<std::string, std::string>> env_;
  std::vector<std::string> addresses_;
  std::string hostfile_, config_, env_dir_;
};

}  // namespace zerorun::testing

#endif  // ZERORUN_TESTS_SUPPORT_CLUSTER_H_
