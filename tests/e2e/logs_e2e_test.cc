// e2e: zerorun logs (issue 14): rank logs from every node through real zerorund agents on
// 127.0.0.2-3, after the job ended and after a zerorund restart, one rank or all, stdout and
// stderr apart; --follow prints as ranks write and ends with the job; --since cuts by time. And the
// record of ended jobs: zerorun jobs, status and stop of a job that ended.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "nlohmann/json.hpp"
#include "support/cluster.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

RunResult Logs(const Cluster& cluster, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {ZR_TEST_ZERORUN, "logs"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {{"ZR_HOME", cluster.launcher_home()}}, "", 60);
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_CASE(
    "zerorun logs prints every rank's output from every node after the job ended, also once the "
    "agents forgot it or restarted",
    "[e2e][logs]") {
  Cluster cluster(2);
  // Rank 3 fails: its stderr says so.
  std::unique_ptr<ChildProcess> job = cluster.Start(
      {"--job-id", "job-logs"},
      {"--lines", "3", "--run-ms", "3000", "--fail-rank", "3", "--fail-after-ms", "300"});
  CHECK(job->Wait(30) == 1);
  const RunResult all = Logs(cluster, {"job-logs"});
  INFO(all.out + all.err);
  CHECK(all.exit_code == 0);
  for (int rank = 0; rank < 4; ++rank) {
    const std::string node = rank < 2 ? "node-a" : "node-b";
    for (int line = 0; line < 3; ++line) {
      CHECK_THAT(all.out,
                 Catch::Contains("[rank " + std::to_string(rank) + " " + node + "] line " +
                                 std::to_string(line) + " of rank " + std::to_string(rank) + "\n"));
    }
  }
  CHECK(Count(all.out, "] line ") == 12);
  CHECK_THAT(all.err, Catch::Contains("[rank 3 node-b] test_rank 3: failing on purpose"));
  CHECK_THAT(all.out, !Catch::Contains("failing on purpose"));  // stderr stays stderr.

  const RunResult one = Logs(cluster, {"job-logs", "--rank", "2"});
  CHECK(one.exit_code == 0);
  CHECK(Count(one.out, "] line ") == 3);
  CHECK(Count(one.out, "[rank 2 node-b]") == 3);

  // zerorund restarted (SIGKILL): the new one reads the files from the job's record on disk.
  cluster.agent(1).Signal(SIGKILL);
  cluster.agent(1).Wait(10);
  cluster.StartAgent(1);
  const RunResult after = Logs(cluster, {"job-logs", "--rank", "3"});
  INFO(after.err);
  CHECK(after.exit_code == 0);
  CHECK(Count(after.out, "[rank 3 node-b] line ") == 3);

  // Errors: no such rank, no such job, a node that does not answer.
  CHECK(Logs(cluster, {"job-logs", "--rank", "9"}).exit_code == 2);
  CHECK(Logs(cluster, {"job-none"}).exit_code == 66);
  cluster.agent(1).Signal(SIGKILL);
  cluster.agent(1).Wait(10);
  const RunResult partial = Logs(cluster, {"job-logs"});
  CHECK(partial.exit_code == 69);
  CHECK_THAT(partial.err, Catch::Contains("zerorun logs: node node-b:"));
  CHECK(Count(partial.out, "[rank 0 node-a] line ") == 3);  // The node that answers is printed.
}

TEST_CASE("zerorun logs --follow prints a rank's lines as they come and ends with the job",
          "[e2e][logs]") {
  Cluster cluster(2);
  std::unique_ptr<ChildProcess> job =
      cluster.Start({"--job-id", "job-follow"}, {"--tick-ms", "100", "--run-ms", "2000"});
  const std::string record = cluster.launcher_home() + "/jobs/job-follow/job.json";
  for (int i = 0; i < 100 && !std::filesystem::exists(record); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(std::filesystem::exists(record));
  const auto start = std::chrono::steady_clock::now();
  const RunResult followed = Logs(cluster, {"job-follow", "--rank", "3", "--follow"});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(followed.out + followed.err);
  CHECK(followed.exit_code == 0);
  CHECK(job->Wait(20) == 0);
  // It ran until the rank exited (about 2 s of ticks), not just what was there at the start.
  CHECK(Count(followed.out, "[rank 3 node-b] tick ") >= 15);
  CHECK(Count(followed.out, "rank 2") == 0);
  CHECK(seconds > 1.0);
  CHECK(seconds < 10.0);
}

TEST_CASE(
    "zerorun logs --since prints only the lines written from then on, on every node, and refuses "
    "a value it cannot read",
    "[e2e][logs]") {
  Cluster cluster(2);
  std::unique_ptr<ChildProcess> job =
      cluster.Start({"--job-id", "job-since"}, {"--tick-ms", "100", "--run-ms", "4000"});
  // Until every rank has written 5 ticks (however slowly the job started), then 1.1 s more: the
  // cut below, in whole seconds as a user types it, is then after those lines.
  for (int i = 0; i < 200; ++i) {
    const std::string so_far = Logs(cluster, {"job-since"}).out;
    bool all = true;
    for (int rank = 0; rank < 4; ++rank) {
      all &= Count(so_far, "] tick 4 of rank " + std::to_string(rank) + "\n") == 1;
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const std::time_t cut = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&cut));
  REQUIRE(job->Wait(30) == 0);
  const RunResult all = Logs(cluster, {"job-since"});
  const RunResult since = Logs(cluster, {"job-since", "--since", text});
  INFO(text << "\n" << all.out << "---\n" << since.out << since.err);
  REQUIRE(all.exit_code == 0);
  CHECK(since.exit_code == 0);
  for (int rank = 0; rank < 4; ++rank) {
    const std::string prefix = "[rank " + std::to_string(rank) + " ";
    // Each rank's lines since the cut are the tail of its whole log: some, not all.
    std::vector<std::string> whole, tail;
    std::istringstream a(all.out), b(since.out);
    for (std::string line; std::getline(a, line);) {
      if (line.rfind(prefix, 0) == 0) whole.push_back(line);
    }
    for (std::string line; std::getline(b, line);) {
      if (line.rfind(prefix, 0) == 0) tail.push_back(line);
    }
    INFO("rank " << rank);
    CHECK(!tail.empty());
    CHECK(tail.size() + 5 <= whole.size());  // At least ticks 0-4 came before the cut.
    REQUIRE(tail.size() <= whole.size());
    CHECK(std::equal(tail.begin(), tail.end(), whole.end() - tail.size()));
  }
  // A duration reaching back before the job prints it all; nothing since now prints nothing.
  CHECK(Logs(cluster, {"job-since", "--since", "1h"}).out == all.out);
  const RunResult now = Logs(cluster, {"job-since", "--since", "0s"});
  CHECK(now.exit_code == 0);
  CHECK(Count(now.out, " tick ") == 0);
  const RunResult bad = Logs(cluster, {"job-since", "--since", "yesterday"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--since 'yesterday' is neither a duration"));
  CHECK(Logs(cluster, {"job-since", "--since", "2099-01-01T00:00:00Z"}).exit_code == 2);
}

TEST_CASE(
    "zerorun logs --since works for a job launched with --log-dir (the journal stays in the job's "
    "own directory)",
    "[e2e][logs]") {
  Cluster cluster(2);
  TempDir logs;
  auto job = cluster.Start({"--job-id", "job-logdir", "--log-dir", logs.path()},
                           {"--lines", "3", "--run-ms", "100"});
  REQUIRE(job->Wait(60) == 0);
  const RunResult all = Logs(cluster, {"job-logdir", "--since", "1h"});
  INFO(all.out << all.err);
  CHECK(all.exit_code == 0);
  CHECK(Count(all.out, "line 2 of rank ") == 4);  // Every rank of both nodes, from --log-dir.
  CHECK(Count(Logs(cluster, {"job-logdir", "--since", "0s"}).out, " line ") == 0);
}

TEST_CASE(
    "zerorun jobs lists ended jobs with their state and exit code, and status and stop of an "
    "ended job answer from its record",
    "[e2e][logs]") {
  TempDir dir;
  const std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  auto launch = [&](const std::string& id, const std::vector<std::string>& rank_args) {
    std::vector<std::string> argv = {ZR_TEST_ZERORUN, "--hostfile", TestData("local2.txt"),
                                     "--config",      config,       "--device",
                                     "cpu",           "--job-id",   id,
                                     ZR_TEST_RANK};
    argv.insert(argv.end(), rank_args.begin(), rank_args.end());
    return Run(argv, env).exit_code;
  };
  REQUIRE(launch("job-ok", {}) == 0);
  REQUIRE(launch("job-bad", {"--run-ms", "2000", "--fail-rank", "1", "--fail-after-ms", "100"}) ==
          1);
  const RunResult table = Run({ZR_TEST_ZERORUN, "jobs"}, env);
  INFO(table.out + table.err);
  CHECK(table.exit_code == 0);
  CHECK(std::regex_search(table.out, std::regex("job-bad +failed +1 +2 ")));
  CHECK(std::regex_search(table.out, std::regex("job-ok +succeeded +0 +2 ")));
  CHECK(table.out.find("job-bad") < table.out.find("job-ok"));  // Newest first.
  const RunResult json = Run({ZR_TEST_ZERORUN, "status", "--all", "--json"}, env);
  const nlohmann::json list = nlohmann::json::parse(json.out);
  REQUIRE(list.size() == 2);
  CHECK(list[0]["job_id"] == "job-bad");
  CHECK(list[0]["exit_code"] == 1);
  CHECK(list[0]["ended_unix_ms"].get<int64_t>() >= list[0]["started_unix_ms"].get<int64_t>());
  const RunResult status = Run({ZR_TEST_ZERORUN, "status", "job-bad"}, env);
  CHECK(status.exit_code == 0);
  CHECK(
      std::regex_search(status.out, std::regex("job job-bad  failed .* ended \\d+ s ago, exit 1")));
  const RunResult stop = Run({ZR_TEST_ZERORUN, "stop", "job-bad"}, env);
  CHECK(stop.exit_code == 0);
  CHECK_THAT(stop.err, Catch::Contains("job job-bad already ended") &&
                           Catch::Contains("(failed, exit 1): nothing to stop"));
}

TEST_CASE(
    "zerorun status --watch redraws one screen in a terminal with progress and ETA, and appends "
    "into a pipe",
    "[e2e][logs][status]") {
  if (Run({"/usr/bin/script", "--version"}, {}).exit_code != 0) {
    WARN("skipped: no script(1) to give zerorun status a terminal");
    return;
  }
  TempDir dir;
  const std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  ChildProcess job({ZR_TEST_ZERORUN, "--hostfile", TestData("local2.txt"), "--config", config,
                    "--device", "cpu", "--job-id", "job-watch", ZR_TEST_RANK, "--report",
                    "--total-steps", "100000", "--run-ms", "3000"},
                   env);
  const std::string record = dir.path() + "/home/jobs/job-watch/job.json";
  for (int i = 0; i < 100 && !std::filesystem::exists(record); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // Some steps reported.
  const RunResult piped = Run({ZR_TEST_ZERORUN, "status", "job-watch"}, env);
  INFO(piped.out);
  CHECK(std::regex_search(piped.out,
                          std::regex("elapsed \\d+s  step \\d+/100000 \\(0%\\) \\[\\.+\\]  ETA ")));
  CHECK(piped.out.find("\033[H") == std::string::npos);
  // In a terminal (script(1) gives it one): one screen, redrawn each second, until the job ends.
  const RunResult tty =
      Run({"/usr/bin/script", "-qfec", std::string(ZR_TEST_ZERORUN) + " status job-watch --watch",
           "/dev/null"},
          env, "", 30);
  CHECK(tty.exit_code == 0);
  CHECK(Count(tty.out, "\033[H\033[2J") >= 2);
  CHECK_THAT(tty.out, Catch::Contains("/100000 ("));
  CHECK(job.Wait(20) == 0);
}

}  // namespace
}  // namespace zerorun::testing
