// e2e fault suite (issue 10): the job survives, or ends cleanly and fast, when its control plane
// fails. Three zerorund on 127.0.0.2-4 (the netns partition case is in netns_e2e.sh); launcher
// SIGKILL and SIGHUP, daemon restart and crash, a frozen daemon, hung ranks. Each test asserts
// the exit code, the node or rank named, the time bound, and that no rank is left (by pid).
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>

#include "nlohmann/json.hpp"
#include "support/child_process.h"
#include "support/cluster.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Waits until every rank the cluster recorded is gone; returns false after `timeout_s`.
bool RanksGoneWithin(const Cluster& cluster, double timeout_s) {
  const auto start = Clock::now();
  while (Since(start) < timeout_s) {
    if (cluster.AllRanksGone()) return true;
    usleep(20 * 1000);
  }
  return cluster.AllRanksGone();
}

void WaitForRanks(const Cluster& cluster, size_t count) {
  for (int i = 0; i < 500 && cluster.RankPids().size() < count; ++i) usleep(20 * 1000);
  REQUIRE(cluster.RankPids().size() == count);
}

// Ends whatever is left by pid (the test owns the ranks it caused).
void KillLeftovers(const Cluster& cluster) {
  for (pid_t pid : cluster.RankPids()) kill(pid, SIGKILL);
}

RunResult Zerorun(const Cluster& cluster, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ZR_TEST_ZERORUN};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {{"ZR_HOME", cluster.launcher_home()}});
}

TEST_CASE(
    "Launcher SIGKILL: every node ends the job's ranks when the lease lapses, status "
    "answers from the nodes without writing, the next launcher records how the job ended",
    "[e2e][fault][lease]") {
  Cluster cluster;
  auto zr = cluster.Start({"--job-id", "lease-test", "--lease", "2"}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status lease-test'", 30));
  WaitForRanks(cluster, 6);
  zr->Signal(SIGKILL);
  const auto killed = Clock::now();
  CHECK(zr->Wait(5) == 128 + SIGKILL);
  const RunResult orphaned = Zerorun(cluster, {"status", "lease-test", "--json"});
  CHECK(orphaned.exit_code == 0);
  CHECK_THAT(orphaned.out, Catch::Contains("\"orphaned\""));
  // Lease 2 s, then SIGTERM (the test rank exits on it): well under 2 + grace 2 + 2 s slack.
  CHECK(RanksGoneWithin(cluster, 6));
  const double took = Since(killed);
  CHECK(took >= 1.5);  // Not before the lease lapsed.
  INFO("ranks ended " << took << " s after the launcher's SIGKILL");
  // The agents learn of each exit from its supervisor's record within their poll interval.
  RunResult ended = Zerorun(cluster, {"status", "lease-test", "--json"});
  for (int i = 0; i < 50 && ended.out.find("\"orphaned\"") != std::string::npos; ++i) {
    usleep(100 * 1000);
    ended = Zerorun(cluster, {"status", "lease-test", "--json"});
  }
  CHECK(ended.exit_code == 0);
  CHECK_THAT(ended.out, Catch::Contains("\"failed\"") &&
                            Catch::Contains("died without ending the job") &&
                            Catch::Contains("lease lapsed"));
  // A reader leaves the record as it was: `jobs` still says lost, and answers the same again.
  const std::string final_path = cluster.launcher_home() + "/jobs/lease-test/status.json";
  CHECK_FALSE(std::ifstream(final_path).good());
  CHECK_THAT(Zerorun(cluster, {"jobs"}).out, Catch::Contains("lost"));
  // The next launcher here records how the lost job ended, beside its own job.
  auto next = cluster.Start({"--job-id", "after-lease-test"}, {"--run-ms", "200"});
  CHECK(next->Wait(60) == 0);
  CHECK(std::ifstream(final_path).good());
  const RunResult jobs = Zerorun(cluster, {"jobs", "--json"});
  CHECK_THAT(jobs.out, Catch::Contains("\"lease-test\"") && !Catch::Contains("\"lost\""));
  KillLeftovers(cluster);
}

TEST_CASE("zerorun stop works without the launcher: the nodes stop their own ranks",
          "[e2e][fault][lease]") {
  Cluster cluster(2);
  auto zr = cluster.Start({"--job-id", "stop-orphan", "--lease", "600"}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status stop-orphan'", 30));
  WaitForRanks(cluster, 4);
  zr->Signal(SIGKILL);
  CHECK(zr->Wait(5) == 128 + SIGKILL);
  const auto start = Clock::now();
  const RunResult stop = Zerorun(cluster, {"stop", "stop-orphan"});
  CHECK(stop.exit_code == 0);
  CHECK_THAT(stop.err, Catch::Contains("the launcher of stop-orphan is gone"));
  CHECK(RanksGoneWithin(cluster, 3));
  CHECK(Since(start) < 5);
  KillLeftovers(cluster);
}

TEST_CASE("Launcher SIGKILL with the embedded agent: its local ranks end at once",
          "[e2e][fault][lease]") {
  Cluster cluster(1);  // For its directories and rank pid files; the job runs on localhost.
  const std::string hosts = cluster.dir().Write("local_hosts", "localhost slots=2\n");
  auto zr = cluster.Start({"--hostfile", hosts}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  WaitForRanks(cluster, 2);
  zr->Signal(SIGKILL);
  const auto killed = Clock::now();
  CHECK(RanksGoneWithin(cluster, 3));
  INFO("local ranks ended " << Since(killed) << " s after the launcher's SIGKILL");
  KillLeftovers(cluster);
}

TEST_CASE("SIGHUP (terminal or ssh session closed) stops the job like SIGTERM: exit 129",
          "[e2e][fault][signals]") {
  Cluster cluster(2);
  auto zr = cluster.Start({}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  WaitForRanks(cluster, 4);
  zr->Signal(SIGHUP);
  CHECK(zr->Wait(15) == 128 + SIGHUP);
  CHECK_THAT(zr->Output(), Catch::Contains("received SIGHUP: stopping every rank"));
  CHECK(RanksGoneWithin(cluster, 3));
  KillLeftovers(cluster);
}

// Every "tick K of rank R" line of `rank` exactly once, K = 0..max with no gap.
void CheckTicksComplete(const std::string& output, int rank) {
  std::multiset<int> ticks;
  const std::regex tick("tick (\\d+) of rank " + std::to_string(rank) + "\\b");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), tick);
       it != std::sregex_iterator(); ++it) {
    ticks.insert(std::stoi((*it)[1].str()));
  }
  REQUIRE_FALSE(ticks.empty());
  const int max = *ticks.rbegin();
  INFO("rank " << rank << ": " << ticks.size() << " tick lines, max " << max);
  CHECK(static_cast<int>(ticks.size()) == max + 1);
  for (int k = 0; k <= max; ++k) CHECK(ticks.count(k) == 1);
}

TEST_CASE(
    "zerorund restarted (SIGTERM or SIGKILL) re-adopts its ranks, the launcher resumes "
    "and no rank or line is lost",
    "[e2e][fault][adopt]") {
  const int sig = GENERATE(SIGTERM, SIGKILL);
  INFO("zerorund stopped with signal " << sig);
  Cluster cluster(2);
  auto zr = cluster.Start({"--job-id", "adopt-test"}, {"--run-ms", "5000", "--tick-ms", "20"});
  REQUIRE(zr->WaitForOutput("'zerorun status adopt-test'", 30));
  WaitForRanks(cluster, 4);
  const std::vector<pid_t> pids = cluster.RankPids();
  usleep(500 * 1000);
  cluster.agent(1).Signal(sig);
  CHECK(cluster.agent(1).Wait(10) == (sig == SIGTERM ? 0 : 128 + SIGKILL));
  usleep(1000 * 1000);  // Down for a second, as a restart is.
  for (pid_t pid : pids) CHECK_FALSE(ProcessGone(pid));
  const auto restarted = Clock::now();
  cluster.StartAgent(1);
  CHECK_THAT(cluster.agent(1).Output(), Catch::Contains("re-adopted the live ranks of 1 job(s)"));
  CHECK(zr->Wait(30) == 0);
  const std::string out = zr->Output();
  CHECK_THAT(out, Catch::Contains("node node-b: lost contact with zerorund at") &&
                      Catch::Contains("node node-b: reconnected to zerorund at") &&
                      Catch::Contains("succeeded: all 4 rank(s) exited 0"));
  INFO("re-adopted and resumed within " << Since(restarted) << " s of the restart");
  for (int rank = 0; rank < 4; ++rank) CheckTicksComplete(out, rank);
  CHECK(RanksGoneWithin(cluster, 3));
  KillLeftovers(cluster);
}

TEST_CASE(
    "zerorund SIGKILLed and not restarted: exit 200 after the reconnect window naming the "
    "node, and its ranks end on their own",
    "[e2e][fault][adopt]") {
  Cluster cluster(2);
  auto zr = cluster.Start({"--reconnect-window", "3", "--lease", "2"}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  WaitForRanks(cluster, 4);
  cluster.agent(1).Signal(SIGKILL);
  const auto killed = Clock::now();
  CHECK(zr->Wait(15) == 200);
  const double exited = Since(killed);
  CHECK(exited >= 2.5);
  CHECK(exited < 6);
  CHECK_THAT(zr->Output(), Catch::Contains("node node-b lost: zerorund at 127.0.0.3:") &&
                               Catch::Contains("unreachable for"));
  // node-b's supervisors: no daemon, so they wait the window (3 s) for one, then end the ranks.
  CHECK(RanksGoneWithin(cluster, 8));
  KillLeftovers(cluster);
}

TEST_CASE(
    "A frozen zerorund (SIGSTOP) is found within the node timeout: exit 200 naming the "
    "node and its silence, and its ranks end when the lease lapses",
    "[e2e][fault][frozen]") {
  Cluster cluster(3);
  auto zr = cluster.Start({"--node-timeout", "3", "--lease", "2"}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  WaitForRanks(cluster, 6);
  cluster.agent(2).Signal(SIGSTOP);
  const auto frozen = Clock::now();
  CHECK(zr->Wait(15) == 200);
  const double detected = Since(frozen);
  CHECK(detected >= 2.5);
  CHECK(detected < 6);
  CHECK_THAT(zr->Output(), Catch::Contains("node node-c lost: no word from zerorund at "
                                           "127.0.0.4:"));
  // The frozen daemon renews nothing: its ranks' supervisors end them after the lease.
  CHECK(RanksGoneWithin(cluster, 8));
  cluster.agent(2).Signal(SIGCONT);
  KillLeftovers(cluster);
}

TEST_CASE(
    "A rank failure is reported at once while another node is frozen: exit 1, no wait "
    "for the frozen node",
    "[e2e][fault][frozen]") {
  Cluster cluster(3);
  auto zr = cluster.Start({"--lease", "3"},
                          {"--run-ms", "60000", "--fail-rank", "0", "--fail-after-ms", "2500"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  WaitForRanks(cluster, 6);
  cluster.agent(2).Signal(SIGSTOP);
  const auto frozen = Clock::now();
  CHECK(zr->Wait(20) == 1);
  const double took = Since(frozen);
  CHECK(took < 7);  // The failure at ~2.5 s plus 2 s of silence; not the 9 s node timeout.
  INFO("exit " << took << " s after the freeze");
  CHECK_THAT(zr->Output(), Catch::Contains("rank 0 (local 0)") &&
                               Catch::Contains("node node-c silent for") &&
                               Catch::Contains("not waiting for it"));
  CHECK(RanksGoneWithin(cluster, 8));  // node-c's ranks: its frozen daemon renews no lease.
  cluster.agent(2).Signal(SIGCONT);
  KillLeftovers(cluster);
}

TEST_CASE(
    "Hang timeout: a rank whose step stops (heartbeat alive) ends the job with 201, "
    "naming the rank and its last step",
    "[e2e][fault][hang]") {
  Cluster cluster(1);
  auto zr = cluster.Start({"--hang-timeout", "1.5"},
                          {"--run-ms", "60000", "--report", "--stall-rank", "1", "--stall-after-ms",
                           "500", "--tick-ms", "200"});
  const auto start = Clock::now();
  CHECK(zr->Wait(20) == 201);
  CHECK(Since(start) < 10);
  const std::string out = zr->Output();
  CHECK_THAT(out, Catch::Contains("rank 1 on node-a hung: step ") &&
                      Catch::Contains("unchanged for") && Catch::Contains("last step ") &&
                      Catch::Contains("last output of rank 1:") && Catch::Contains("| tick"));
  CHECK(RanksGoneWithin(cluster, 3));
  KillLeftovers(cluster);
}

TEST_CASE("Hang timeout: a rank whose heartbeat stops ends the job with 201",
          "[e2e][fault][hang]") {
  Cluster cluster(1);
  auto zr = cluster.Start({"--hang-timeout", "1"},
                          {"--run-ms", "60000", "--report", "--report-ms", "500"});
  CHECK(zr->Wait(20) == 201);
  // Steps and heartbeats stop together; whichever is older by a tick is named, with both ages.
  CHECK_THAT(zr->Output(), Catch::Matches("[\\s\\S]*on node-a hung: (no heartbeat for|step \\d+ "
                                          "unchanged for [0-9.]+ s \\(last heartbeat)[\\s\\S]*"));
  CHECK(RanksGoneWithin(cluster, 3));
  KillLeftovers(cluster);
}

TEST_CASE(
    "Hang timeout with libzerorun ranks: a frozen rank is named, and the flight recorder "
    "shows what the others wait on",
    "[e2e][fault][hang]") {
  Cluster cluster(1);  // Its directories only: the job runs on this machine's embedded agent.
  const std::string hosts = cluster.dir().Write("local_hosts", "localhost slots=2\n");
  const std::string config =
      cluster.dir().Write("ds_hang.json",
                          "{\"train_batch_size\": 8, \"train_micro_batch_size_per_gpu\": 4, "
                          "\"gradient_clipping\": 1.0, \"zero_optimization\": {\"stage\": 2}}");
  std::vector<std::string> argv = {ZR_TEST_ZERORUN,
                                   "--hostfile",
                                   hosts,
                                   "--config",
                                   config,
                                   "--device",
                                   "cpu",
                                   "--job-id",
                                   "hang-gpt",
                                   "--hang-timeout",
                                   "3",
                                   "--grace-period",
                                   "1",
                                   ZR_TEST_TRAIN_GPT,
                                   "--random-tokens",
                                   "--vocab",
                                   "64",
                                   "--steps",
                                   "100000"};
  ChildProcess zr(argv, {{"ZR_HOME", cluster.launcher_home()}});
  REQUIRE(zr.WaitForOutput("step   20/", 60));
  const RunResult status = Zerorun(cluster, {"status", "hang-gpt", "--json"});
  const nlohmann::json j = nlohmann::json::parse(status.out, nullptr, false);
  REQUIRE(j.is_object());
  const pid_t frozen = j["ranks"][1]["pid"].get<int>();
  const pid_t other = j["ranks"][0]["pid"].get<int>();
  REQUIRE(frozen > 0);
  kill(frozen, SIGSTOP);
  const auto start = Clock::now();
  CHECK(zr.Wait(30) == 201);
  CHECK(Since(start) < 10);
  const std::string out = zr.Output();
  CHECK_THAT(out, Catch::Contains("rank 1 on localhost hung: no heartbeat for") &&
                      Catch::Contains("collectives in flight:") && Catch::Contains("rank 0: ") &&
                      Catch::Contains("waiting on rank(s) 1"));
  for (pid_t pid : {frozen, other}) {
    for (int i = 0; i < 300 && !ProcessGone(pid); ++i) usleep(10 * 1000);
    CHECK(ProcessGone(pid));
    kill(pid, SIGKILL);
  }
}

size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

long RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_CASE(
    "zerorund's memory stays flat while ranks print millions of lines, and the launcher "
    "gets every line",
    "[e2e][fault][memory]") {
  Cluster cluster(1);
  const pid_t agent = cluster.agent(0).pid();
  const long before = RssKib(agent);
  long after_first = 0;
  for (int round = 0; round < 2; ++round) {
    // Two ranks x 1,000,000 lines; rank 0's shown (the launcher reads every event either way).
    auto zr = cluster.Start({"--ranks", "0"}, {"--lines", "1000000"});
    CHECK(zr->Wait(240) == 0);
    const std::string out = zr->Output();
    CHECK(out.find("[rank 0 node-a] line 999999 of rank 0") != std::string::npos);
    // A launcher that keeps reading gets every line, however far behind it falls (back-pressure:
    // zerorund waits for it, the ranks never do).
    CHECK(out.find("dropped") == std::string::npos);
    CHECK(CountOf(out, "[rank 0 node-a] line ") == 1000000);
    if (round == 0) after_first = RssKib(agent);
  }
  const long after = RssKib(agent);
  INFO("zerorund VmRSS " << before << " KiB -> " << after_first << " -> " << after << " KiB");
  CHECK(after - before < 48 * 1024);       // Was +415 MiB per million lines.
  CHECK(after - after_first < 16 * 1024);  // Flat: a second round adds (almost) nothing.
}

TEST_CASE(
    "20 jobs on one zerorund, each rank printing tens of thousands of lines: every launcher gets "
    "every line, and zerorund's memory returns once the jobs are forgotten",
    "[e2e][fault][memory]") {
  // Forgotten as soon as they end (Status evicts), so what they held must be given back.
  Cluster cluster(1, "", {"--retention", "0", "--replay-lines", "1024"});
  const pid_t agent = cluster.agent(0).pid();
  constexpr int kJobs = 20, kLines = 20000;
  long after_first = 0;
  for (int round = 0; round < 2; ++round) {
    // Each launcher writes into a pipe nobody reads for 8 s: it falls behind (its console
    // blocks), keeps its Watch stream open, then reads on.
    std::vector<std::unique_ptr<ChildProcess>> jobs;
    for (int j = 0; j < kJobs; ++j) {
      const std::string launch =
          std::string(ZR_TEST_ZERORUN) + " --hostfile " + cluster.hostfile() + " --config " +
          cluster.config() + " --device cpu --num_gpus 1 --job-id load-" + std::to_string(round) +
          "-" + std::to_string(j) + " " + ZR_TEST_RANK + " --lines " + std::to_string(kLines);
      jobs.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{"/bin/sh", "-c",
                                   "{ " + launch +
                                       " 2>&1; echo \"zerorun exit $?\"; } | "
                                       "{ sleep 8; cat; }"},
          std::map<std::string, std::string>{{"ZR_HOME", cluster.launcher_home()}}));
    }
    for (int j = 0; j < kJobs; ++j) {
      INFO("job " << j);
      CHECK(jobs[j]->Wait(240) == 0);
      const std::string out = jobs[j]->Output();
      CHECK_THAT(out, Catch::Contains("zerorun exit 0"));
      CHECK(out.find("dropped") == std::string::npos);
      CHECK(CountOf(out, "] line ") == static_cast<size_t>(kLines));
    }
    jobs.clear();
    // A launch makes zerorund forget the ended jobs first (retention 0).
    CHECK(cluster.Start({"--num_gpus", "1", "--job-id", "evict-" + std::to_string(round)}, {})
              ->Wait(60) == 0);
    if (round == 0) after_first = RssKib(agent);
  }
  const long after = RssKib(agent);
  INFO("zerorund VmRSS after round 1 " << after_first << " KiB, after round 2 " << after);
  CHECK(after - after_first < 8 * 1024);  // No growth per job: nothing is kept of a forgotten one.
}

}  // namespace
}  // namespace zerorun::testing
