// Benchmark (label bench): control-plane fault figures with default settings, on this machine.
//   launcher SIGKILL -> last rank gone (3 nodes, lease 10 s; and the embedded agent)
//   zerorund SIGKILL (not restarted) -> contact-lost notice, and exit 200 (window 30 s)
//   zerorund SIGSTOP -> exit 200 (node timeout 9 s)
//   zerorund restart (SIGTERM, 1 s down) -> the launcher resumed (re-adoption)
//   zerorund RSS before and after a rank prints 1,000,000 lines (replay buffer 4096 per rank)
// The partition figure (veth down) is printed by tests/e2e/netns_e2e.sh.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "support/cluster.h"

namespace zerorun::testing {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double WaitRanksGone(const Cluster& cluster, Clock::time_point start, double limit_s) {
  while (Since(start) < limit_s && !cluster.AllRanksGone()) usleep(10 * 1000);
  return cluster.AllRanksGone() ? Since(start) : -1;
}

double WaitOutput(ChildProcess& child, const std::string& text, Clock::time_point start,
                  double limit_s) {
  return child.WaitForOutput(text, limit_s) ? Since(start) : -1;
}

long RssKib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  }
  return -1;
}

TEST_CASE("fault figures", "[bench]") {
  {
    Cluster cluster;
    auto zr = cluster.Start({}, {"--run-ms", "120000"});
    REQUIRE(zr->WaitForOutput("'zerorun status", 30));
    while (cluster.RankPids().size() < 6) usleep(10 * 1000);
    zr->Signal(SIGKILL);
    const double gone = WaitRanksGone(cluster, Clock::now(), 30);
    std::printf("launcher SIGKILL -> every rank on 3 nodes gone: %.2f s (lease 10 s)\n", gone);
  }
  {
    Cluster cluster(1);
    const std::string hosts = cluster.dir().Write("local", "localhost slots=2\n");
    auto zr = cluster.Start({"--hostfile", hosts}, {"--run-ms", "120000"});
    REQUIRE(zr->WaitForOutput("'zerorun status", 30));
    while (cluster.RankPids().size() < 2) usleep(10 * 1000);
    zr->Signal(SIGKILL);
    const double gone = WaitRanksGone(cluster, Clock::now(), 30);
    std::printf("launcher SIGKILL -> embedded agent's ranks gone: %.2f s\n", gone);
  }
  {
    Cluster cluster(2);
    auto zr = cluster.Start({}, {"--run-ms", "120000"});
    REQUIRE(zr->WaitForOutput("'zerorun status", 30));
    while (cluster.RankPids().size() < 4) usleep(10 * 1000);
    cluster.agent(1).Signal(SIGKILL);
    const auto start = Clock::now();
    const double noticed = WaitOutput(*zr, "node node-b: lost contact", start, 60);
    CHECK(zr->Wait(60) == 200);
    std::printf("zerorund SIGKILL -> contact-lost notice: %.2f s; exit 200: %.2f s (window 30 s)\n",
                noticed, Since(start));
    const double gone = WaitRanksGone(cluster, start, 60);
    std::printf("zerorund SIGKILL -> its ranks gone on their own: %.2f s\n", gone);
  }
  {
    Cluster cluster(2);
    auto zr = cluster.Start({}, {"--run-ms", "120000"});
    REQUIRE(zr->WaitForOutput("'zerorun status", 30));
    while (cluster.RankPids().size() < 4) usleep(10 * 1000);
    cluster.agent(1).Signal(SIGSTOP);
    const auto start = Clock::now();
    CHECK(zr->Wait(60) == 200);
    std::printf("zerorund SIGSTOP -> exit 200: %.2f s (node timeout 9 s)\n", Since(start));
    const double gone = WaitRanksGone(cluster, start, 60);
    std::printf("zerorund SIGSTOP -> its ranks gone (lease): %.2f s\n", gone);
    cluster.agent(1).Signal(SIGCONT);
  }
  {
    Cluster cluster(2);
    auto zr = cluster.Start({}, {"--run-ms", "8000", "--tick-ms", "10"});
    REQUIRE(zr->WaitForOutput("'zerorun status", 30));
    while (cluster.RankPids().size() < 4) usleep(10 * 1000);
    cluster.agent(1).Signal(SIGTERM);
    cluster.agent(1).Wait(10);
    usleep(1000 * 1000);
    const auto start = Clock::now();
    cluster.StartAgent(1);
    const double started = Since(start);
    const double resumed = WaitOutput(*zr, "node node-b: reconnected", start, 60);
    const int exit_code = zr->Wait(60);
    std::printf(
        "zerorund restart -> listening %.2f s, launcher resumed %.2f s after the start "
        "(job exit %d)\n",
        started, resumed, exit_code);
  }
  {
    Cluster cluster(1);
    auto zr = cluster.Start({"--ranks", "0"}, {"--run-ms", "0", "--lines", "1000000"});
    const pid_t agent = cluster.agent(0).pid();
    const long before = RssKib(agent, "VmRSS:");
    CHECK(zr->Wait(300) == 0);
    const long after = RssKib(agent, "VmRSS:");
    const long peak = RssKib(agent, "VmHWM:");
    std::printf(
        "zerorund RSS: %ld KiB before, %ld KiB after 2 ranks x 1,000,000 lines (peak %ld "
        "KiB): +%.1f MiB\n",
        before, after, peak, static_cast<double>(after - before) / 1024.0);
  }
}

}  // namespace
}  // namespace zerorun::testing
