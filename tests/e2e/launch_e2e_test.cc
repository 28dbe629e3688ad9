// e2e: `zerorun run` across three zerorund agents bound to 127.0.0.2, .3 and .4 (three nodes on
// loopback), with the test rank program. Every process is the test's own and checked by pid.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "support/child_process.h"
#include "support/cluster.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

using json = nlohmann::json;

TEST_CASE("A job across 3 agents gives every rank the rank environment and exits 0",
          "[e2e][launch]") {
  Cluster cluster;
  TempDir logs;
  auto zr = cluster.Start({"--log-dir", logs.path()}, {"--lines", "2"});
  REQUIRE(zr->Wait(30) == 0);
  const std::string out = zr->Output();
  CHECK_THAT(out, Catch::Contains("[rank 0 node-a] line 0 of rank 0") &&
                      Catch::Contains("[rank 5 node-c] line 1 of rank 5") &&
                      Catch::Contains("succeeded: all 6 rank(s) exited 0"));
  for (int rank = 0; rank < 6; ++rank) {
    INFO("rank " << rank);
    auto env = cluster.RankEnv(rank);
    const int node = rank / 2;
    CHECK(env["RANK"] == std::to_string(rank));
    CHECK(env["LOCAL_RANK"] == std::to_string(rank % 2));
    CHECK(env["WORLD_SIZE"] == "6");
    CHECK(env["LOCAL_SIZE"] == "2");
    CHECK(env["LOCAL_WORLD_SIZE"] == "2");
    CHECK(env["NODE_RANK"] == std::to_string(node));
    CHECK(env["GROUP_RANK"] == std::to_string(node));
    CHECK(env["CROSS_RANK"] == std::to_string(node));
    CHECK(env["CROSS_SIZE"] == "3");
    CHECK(env["MASTER_ADDR"] == "127.0.0.2");
    CHECK(env["MASTER_PORT"] == "29500");
    CHECK(env.count("CUDA_VISIBLE_DEVICES") == 0);  // CPU job.
    CHECK(env["ZERORUN_JOB_ID"].rfind("zr-", 0) == 0);
    CHECK(env["ZERORUN_COORDINATOR"].rfind("127.0.0.1:", 0) == 0);
    // Its own rank token, not the job secret (tests/launcher/coordinator_auth_test.cc).
    CHECK(std::regex_match(env["ZERORUN_JOB_SECRET"],
                           std::regex("r" + std::to_string(rank) + "\\.[0-9a-f]{64}")));
    CHECK_THAT(env["argv"],
               Catch::Contains("--local_rank=" + std::to_string(rank % 2) + " --env-dir"));
    // Only the job's user may read its files: logs and config 0600, the job directory 0700.
    struct stat st {};
    REQUIRE(stat(env["ZERORUN_CONFIG"].c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const std::string job_dir = env["ZERORUN_CONFIG"].substr(0, env["ZERORUN_CONFIG"].rfind('/'));
    REQUIRE(stat(job_dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    const std::string rank_log = logs.path() + "/rank_" + std::to_string(rank) + "/stdout.log";
    REQUIRE(stat(rank_log.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    std::ifstream config(env["ZERORUN_CONFIG"]);
    CHECK(json::parse(config)["train_micro_batch_size_per_gpu"] == 1);
    std::ifstream log(logs.path() + "/rank_" + std::to_string(rank) + "/stdout.log");
    std::stringstream text;
    text << log.rdbuf();
    CHECK(text.str() == "line 0 of rank " + std::to_string(rank) + "\nline 1 of rank " +
                            std::to_string(rank) + "\n");
  }
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("SIGKILL of one rank ends every rank on every node within 2 s with exit 137",
          "[e2e][launch][failure]") {
  Cluster cluster;
  auto zr = cluster.Start(
      {}, {"--run-ms", "60000", "--fail-rank", "4", "--fail-after-ms", "800", "--kill-self", "9"});
  REQUIRE(zr->WaitForOutput("failing on purpose", 30));
  const auto failed_at = std::chrono::steady_clock::now();
  const int code = zr->Wait(30);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - failed_at).count();
  CHECK(code == 137);
  CHECK(seconds < 2.0);
  const std::string out = zr->Output();
  INFO(out);
  CHECK_THAT(out, Catch::Contains("FAILED (exit 137)") &&
                      Catch::Contains("host node-c (127.0.0.4)  rank 4 (local 0)") &&
                      Catch::Contains("killed by signal 9 (SIGKILL)") &&
                      Catch::Contains("failing on purpose") &&
                      Catch::Contains("5 stopped by zerorun"));
  CHECK(cluster.RankPids().size() == 6);
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("A rank exiting non-zero gives exit 1 and names the rank", "[e2e][launch][failure]") {
  Cluster cluster;
  auto zr = cluster.Start({}, {"--run-ms", "60000", "--fail-rank", "1", "--exit-code", "7"});
  CHECK(zr->Wait(30) == 1);
  CHECK_THAT(zr->Output(), Catch::Contains("host node-a (127.0.0.2)  rank 1 (local 1)") &&
                               Catch::Contains("exited with code 7"));
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("A rank that ignores SIGTERM is killed after the grace period", "[e2e][launch]") {
  Cluster cluster(2);
  auto zr = cluster.Start({}, {"--run-ms", "60000", "--fail-rank", "0", "--hang-rank", "3"});
  CHECK(zr->Wait(30) == 1);
  CHECK_THAT(zr->Output(), Catch::Contains("grace period of 2s over"));
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("An unreachable node means no process starts on any node", "[e2e][launch]") {
  Cluster cluster(2);
  std::ifstream in(cluster.hostfile());
  std::stringstream yaml;
  yaml << in.rdbuf() << "  - {name: node-z, address: 127.0.0.9, agent_port: 1, slots: 2}\n";
  const std::string hosts = cluster.dir().Write("hosts4.yaml", yaml.str());
  auto zr = cluster.Start({"--hostfile", hosts}, {"--run-ms", "100"});
  CHECK(zr->Wait(30) == 69);
  CHECK_THAT(zr->Output(), Catch::Contains("node-z") && Catch::Contains("unreachable"));
  CHECK(cluster.RankPids().empty());
}

TEST_CASE("A CRITICAL check on the nodes means nothing starts", "[e2e][launch]") {
  Cluster cluster(2);
  // A GPU job on GPU-less nodes.
  auto zr = cluster.Start({"--device", "gpu"}, {"--run-ms", "100"},
                          {{"ZR_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1"}});
  CHECK(zr->Wait(30) == 69);
  CHECK_THAT(zr->Output(), Catch::Contains("gpu_count") && Catch::Contains("node-b"));
  CHECK(cluster.RankPids().empty());
}

TEST_CASE("zerorun status shows every rank while the job runs", "[e2e][launch][status]") {
  Cluster cluster;
  auto zr = cluster.Start({"--job-id", "status-test"}, {"--run-ms", "60000", "--report"});
  REQUIRE(zr->WaitForOutput("'zerorun status status-test'", 30));
  const std::map<std::string, std::string> env = {{"ZR_HOME", cluster.launcher_home()}};
  json status;
  bool stepping = false;
  for (int attempt = 0; attempt < 100 && !stepping; ++attempt) {
    const RunResult r = Run({ZR_TEST_ZERORUN, "status", "--json"}, env);  // The only job.
    REQUIRE(r.exit_code == 0);
    status = json::parse(r.out);
    stepping = true;
    for (const json& rank : status["ranks"]) stepping &= rank["step"].get<int64_t>() > 2;
    if (!stepping) usleep(100 * 1000);
  }
  INFO(status.dump(2));
  REQUIRE(stepping);
  CHECK(status["job_id"] == "status-test");
  CHECK(status["state"] == "running");
  REQUIRE(status["ranks"].size() == 6);
  for (int rank = 0; rank < 6; ++rank) {
    const json& r = status["ranks"][rank];
    CHECK(r["rank"] == rank);
    CHECK(r["node"] == std::string("node-") + static_cast<char>('a' + rank / 2));
    CHECK(r["pid"].get<int>() > 0);
    CHECK(r["state"] == "running");
    CHECK(r["loss"].get<double>() > 0);
    CHECK(r["tokens_per_second"].get<double>() == 1000.0 * (rank + 1));
    CHECK(r["memory_bytes"].get<int64_t>() == (rank + 1) * 1048576);
    CHECK(r["phase"] == "train");
    CHECK(r["heartbeat_age_s"].get<double>() >= 0);
    CHECK(r["heartbeat_age_s"].get<double>() < 5);
  }
  const RunResult table = Run({ZR_TEST_ZERORUN, "status", "status-test"}, env);
  CHECK_THAT(table.out,
             Catch::Contains("RANK") && Catch::Contains("node-c") && Catch::Contains("running"));
  // zerorun stop ends it on every node; the final status stays readable.
  CHECK(Run({ZR_TEST_ZERORUN, "stop", "status-test"}, env).exit_code == 0);
  CHECK(zr->Wait(30) == 128 + SIGTERM);
  CHECK(cluster.AllRanksGone());
  const json final_status =
      json::parse(Run({ZR_TEST_ZERORUN, "status", "status-test", "--json"}, env).out);
  CHECK(final_status["state"] == "failed");
}

TEST_CASE("A rank whose heartbeat stops is reported stale", "[e2e][launch][status]") {
  Cluster cluster(1);
  auto zr = cluster.Start({"--job-id", "stale-test", "--heartbeat-timeout", "0.5"},
                          {"--run-ms", "60000", "--report", "--report-ms", "300"});
  REQUIRE(zr->WaitForOutput("'zerorun status stale-test'", 30));
  const std::map<std::string, std::string> env = {{"ZR_HOME", cluster.launcher_home()}};
  json status;
  bool stale = false;
  for (int attempt = 0; attempt < 50 && !stale; ++attempt) {
    usleep(100 * 1000);
    status = json::parse(Run({ZR_TEST_ZERORUN, "status", "stale-test", "--json"}, env).out);
    stale = status["ranks"][0]["state"] == "stale" && status["ranks"][1]["state"] == "stale";
  }
  INFO(status.dump(2));
  CHECK(stale);
  CHECK(status["ranks"][0]["heartbeat_age_s"].get<double>() > 0.5);
  zr->Signal(SIGTERM);
  CHECK(zr->Wait(30) == 128 + SIGTERM);
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("Programs without libzerorun report through 'zerorun report'", "[e2e][launch][status]") {
  Cluster cluster(1);
  TempDir dir;
  const std::string script =
      dir.Write("rank.sh", std::string("#!/bin/sh\n") + ZR_TEST_ZERORUN +
                               " report --step 42 --loss 1.25 --tokens-per-second 99 --phase eval\n"
                               "sleep 30\n");
  chmod(script.c_str(), 0755);
  std::vector<std::string> argv = {
      ZR_TEST_ZERORUN, "--hostfile", cluster.hostfile(), "--config",    cluster.config(),
      "--device",      "cpu",        "--job-id",         "report-test", "--no_local_rank",
      script};
  const std::map<std::string, std::string> env = {{"ZR_HOME", cluster.launcher_home()}};
  ChildProcess zr(argv, env);
  REQUIRE(zr.WaitForOutput("'zerorun status report-test'", 30));
  json status;
  for (int attempt = 0; attempt < 50; ++attempt) {
    status = json::parse(Run({ZR_TEST_ZERORUN, "status", "report-test", "--json"}, env).out);
    if (status["ranks"][1]["step"] == 42) break;
    usleep(100 * 1000);
  }
  CHECK(status["ranks"][1]["step"] == 42);
  CHECK(status["ranks"][1]["loss"] == 1.25);
  CHECK(status["ranks"][1]["phase"] == "eval");
  zr.Signal(SIGINT);
  CHECK(zr.Wait(30) == 130);
  // Outside a rank, report explains what is missing.
  const RunResult outside =
      Run({ZR_TEST_ZERORUN, "report", "--step", "1"}, {{"ZERORUN_COORDINATOR", ""}, {"RANK", ""}});
  CHECK(outside.exit_code == 2);
  CHECK_THAT(outside.err, Catch::Contains("ZERORUN_COORDINATOR"));
}

TEST_CASE("Ctrl-C is forwarded to every rank and exits 130", "[e2e][launch][signals]") {
  Cluster cluster;
  auto zr = cluster.Start({}, {"--run-ms", "60000"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  for (int i = 0; i < 200 && cluster.RankPids().size() < 6; ++i) usleep(20 * 1000);
  REQUIRE(cluster.RankPids().size() == 6);
  zr->Signal(SIGINT);
  CHECK(zr->Wait(30) == 130);
  CHECK_THAT(zr->Output(), Catch::Contains("received SIGINT"));
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("A second Ctrl-C within a second kills ranks that ignore SIGTERM at once",
          "[e2e][launch][signals]") {
  Cluster cluster(1);
  auto zr = cluster.Start({"--grace-period", "60"}, {"--run-ms", "60000", "--hang-rank", "1"});
  REQUIRE(zr->WaitForOutput("'zerorun status", 30));
  for (int i = 0; i < 200 && cluster.RankPids().size() < 2; ++i) usleep(20 * 1000);
  REQUIRE(cluster.RankPids().size() == 2);
  const auto start = std::chrono::steady_clock::now();
  zr->Signal(SIGINT);
  REQUIRE(zr->WaitForOutput("Ctrl-C again to kill now", 10));
  zr->Signal(SIGINT);
  CHECK(zr->Wait(30) == 130);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // Not the 60 s grace.
  CHECK_THAT(zr->Output(), Catch::Contains("second Ctrl-C: killing every rank now"));
  CHECK(cluster.AllRanksGone());
}

TEST_CASE("Agents with a secret refuse a launcher without it (exit 77)", "[e2e][launch][auth]") {
  Cluster cluster(1, "s3cret-for-test");
  auto refused = cluster.Start({}, {"--run-ms", "100"});
  CHECK(refused->Wait(30) == 77);
  CHECK_THAT(refused->Output(), Catch::Contains("refused the credentials"));
  CHECK(cluster.RankPids().empty());
  auto accepted = cluster.Start({}, {"--run-ms", "2000"}, {{"ZR_SECRET", "s3cret-for-test"}});
  // No credential of zerorun's in a running rank's /proc/<pid>/environ: not the cluster secret
  // (the agents' and the launcher's environment), only the rank's own token.
  std::vector<int> pids;
  for (int i = 0; i < 100 && pids.size() < 2; ++i) {
    pids = cluster.RankPids();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(pids.size() == 2);
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    const std::string environ((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    REQUIRE_THAT(environ, Catch::Contains("ZERORUN_JOB_SECRET=r"));
    CHECK_THAT(environ, !Catch::Contains("s3cret-for-test") && !Catch::Contains("ZR_SECRET"));
  }
  CHECK(accepted->Wait(30) == 0);
  // zerorund audited both: who (the peer), what, which job, and the decision.
  const std::string audit = cluster.agent(0).Output();
  CHECK(std::regex_search(audit, std::regex("audit: Probe job=- peer=ipv4:127\\.0\\.0\\.1:[0-9]+ "
                                            "refused \\(missing or wrong secret")));
  CHECK(std::regex_search(audit,
                          std::regex("audit: Launch job=zr-[^ ]+ ranks=2 argv0=[^ ]*zr_test_rank "
                                     "peer=ipv4:127\\.0\\.0\\.1:[0-9]+ accepted")));
  CHECK(std::regex_search(audit, std::regex("audit: Watch job=zr-[^ ]+ peer=[^ ]+ accepted")));
}

TEST_CASE(
    "zerorund refuses a non-loopback address without a secret, decided on what the name resolves "
    "to, and a secret file others may read",
    "[e2e][auth]") {
  for (const std::string address : {"0.0.0.0:0", "127.evil.example:0"}) {
    const RunResult r = Run({ZR_TEST_ZERORUND, "--listen", address}, {{"ZR_SECRET", ""}});
    CHECK(r.exit_code == 77);
    CHECK_THAT(r.err, Catch::Contains("refusing to listen on " + address + " without a secret"));
  }
  TempDir dir;
  const std::string secret = dir.Write("secret", "s3cret\n");
  chmod(secret.c_str(), 0644);
  for (const char* binary : {ZR_TEST_ZERORUND, ZR_TEST_ZERORUN}) {
    INFO(binary);
    std::vector<std::string> argv = {binary, "--secret-file", secret};
    if (std::string(binary) == ZR_TEST_ZERORUN) {
      argv.insert(argv.end(), {"--hostfile", dir.Write("hosts", "localhost slots=1\n"), "true"});
    }
    const RunResult r = Run(argv, {});
    CHECK(r.exit_code == 77);
    CHECK_THAT(r.err, Catch::Contains("mode 0644") && Catch::Contains("Fix: chmod 600 " + secret));
  }
}

TEST_CASE("An invalid --job-id is a usage error (exit 2) before pre-flight: nothing is probed",
          "[e2e][usage]") {
  TempDir dir;
  // A node nothing serves: pre-flight would answer 69 after trying it.
  const std::string hosts = dir.Write(
      "hosts.yaml", "hosts:\n  - {name: node-x, address: 127.0.0.9, agent_port: 1, slots: 1}\n");
  for (const std::string& bad :
       std::vector<std::string>{"../etc", "a b", ".hidden", std::string(129, 'x'), "id;rm"}) {
    INFO(bad);
    const RunResult r = Run({ZR_TEST_ZERORUN, "--hostfile", hosts, "--job-id", bad, "true"},
                            {{"ZR_HOME", dir.path() + "/home"}});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("is not a job id") && Catch::Contains("[A-Za-z0-9._-]"));
    CHECK(r.out.find("pre-flight") == std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/home/jobs"));
}

TEST_CASE("zerorund running as root refuses to start ranks unless the node opts in (exit 69)",
          "[e2e][auth]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root (zerorund refuses only when it runs as root)");
    return;
  }
  TempDir dir;
  ChildProcess agent({ZR_TEST_ZERORUND, "--listen", "127.0.0.2:0", "--anonymous-tcp"},
                     {{"ZR_HOME", dir.path()}});
  REQUIRE(agent.WaitForOutput("(port ", 10));
  CHECK_THAT(agent.Output(), Catch::Contains("root: launches refused without --allow-root-ranks"));
  std::smatch port;
  const std::string out = agent.Output();
  REQUIRE(std::regex_search(out, port, std::regex("\\(port (\\d+)\\)")));
  const std::string hosts = dir.Write(
      "hosts.yaml", "hosts:\n  - {name: node-a, address: 127.0.0.2, agent_port: " + port[1].str() +
                        ", slots: 1}\n");
  const RunResult r = Run({ZR_TEST_ZERORUN, "--hostfile", hosts, "--config",
                           dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}"),
                           "--device", "cpu", ZR_TEST_RANK, "--run-ms", "10"},
                          {{"ZR_HOME", dir.path() + "/launcher"}});
  CHECK(r.exit_code == 69);
  CHECK_THAT(r.out + r.err, Catch::Contains("node-a") &&
                                Catch::Contains("the ranks would run as root: refused") &&
                                Catch::Contains("--allow-root-ranks"));
}

TEST_CASE("The embedded agent runs a local job with no daemon", "[e2e][launch]") {
  TempDir dir;
  const std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  const RunResult r =
      Run({ZR_TEST_ZERORUN, "--hostfile", SourcePath("hostfiles/local-cpu.txt"), "--config", config,
           "--device", "cpu", ZR_TEST_RANK, "--env-dir", dir.path(), "--lines", "1"},
          {{"ZR_HOME", dir.path() + "/home"}});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("[rank 1 localhost] line 0 of rank 1"));
  std::ifstream env(dir.path() + "/rank_1.env");
  std::stringstream text;
  text << env.rdbuf();
  CHECK_THAT(text.str(),
             Catch::Contains("WORLD_SIZE=2") && Catch::Contains("MASTER_ADDR=127.0.0.1"));
}

TEST_CASE("Reusing a running job's --job-id touches nothing of that job", "[e2e][launch][jobid]") {
  Cluster cluster(2);
  auto first =
      cluster.Start({"--job-id", "zr-reuse", "--include", "node-a"}, {"--run-ms", "30000"});
  REQUIRE(first->WaitForOutput("rank(s) on 1 node(s)", 20));
  for (int i = 0; i < 100 && cluster.RankPids().size() < 2; ++i) usleep(50 * 1000);
  const std::vector<pid_t> ranks = cluster.RankPids();
  REQUIRE(ranks.size() == 2);
  // The same launcher home: the record names a live launcher, so nothing is checked or sent.
  auto same_home = cluster.Start({"--job-id", "zr-reuse"}, {"--run-ms", "30000"});
  CHECK(same_home->Wait(20) == 2);
  CHECK_THAT(same_home->Output(), Catch::Contains("job id zr-reuse is in use by a running job"));
  // Another launcher (no record of it): node-a refuses the id, node-b accepts and is undone;
  // the refusing node's job is not signalled.
  auto elsewhere = cluster.Start({"--job-id", "zr-reuse"}, {"--run-ms", "30000"},
                                 {{"ZR_HOME", cluster.dir().path() + "/other_launcher"}});
  CHECK(elsewhere->Wait(20) == 69);
  CHECK_THAT(elsewhere->Output(), Catch::Contains("launch failed on node-a"));
  for (pid_t pid : ranks) CHECK_FALSE(ProcessGone(pid));
  std::ifstream record(cluster.launcher_home() + "/jobs/zr-reuse/job.json");
  json j = json::parse(record, nullptr, false);
  CHECK(j["launcher_pid"] == first->pid());
  first->Signal(SIGTERM);
  CHECK(first->Wait(20) == 128 + SIGTERM);
  for (int i = 0; i < 100 && !cluster.AllRanksGone(); ++i) usleep(50 * 1000);
  CHECK(cluster.AllRanksGone());
}

}  // namespace
}  // namespace zerorun::testing
