// e2e: Prometheus metrics of a running job (issue 14). zerorun --metrics-port serves /metrics
// while ranks report; the text is scraped over HTTP during the job and parsed by a real parser
// (prometheus-client in the project venv), and every sample's family has # HELP and # TYPE.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "job/metrics.h"
#include "nlohmann/json.hpp"
#include "support/child_process.h"
#include "support/python_env.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"
#include "train_gpt_runs.h"

namespace zerorun::testing {
namespace {

// One HTTP/1.1 exchange with 127.0.0.1:port: the whole response ("" when nothing answered).
std::string Http(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, n);
  }
  close(fd);
  return response;
}

std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

// Every sample's metric family was declared with # HELP and # TYPE before it.
void CheckDeclared(const std::string& text) {
  std::set<std::string> help, type;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    if (line.rfind("# HELP ", 0) == 0) {
      help.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (line.rfind("# TYPE ", 0) == 0) {
      type.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (!line.empty()) {
      const std::string name = line.substr(0, line.find_first_of("{ "));
      CHECK(help.count(name) == 1);
      CHECK(type.count(name) == 1);
      CHECK(name.rfind("zerorun_", 0) == 0);
    }
  }
}

// The port `job` said it serves /metrics on (it must say so within 15 s).
int MetricsPort(ChildProcess& job) {
  REQUIRE(job.WaitForOutput("/metrics", 15));
  std::smatch m;
  const std::string said = job.Output();
  REQUIRE(
      std::regex_search(said, m, std::regex("metrics at http://127\\.0\\.0\\.1:(\\d+)/metrics")));
  return std::stoi(m[1].str());
}

TEST_CASE(
    "zerorun --metrics-port serves the job's Prometheus metrics while it runs, and a real parser "
    "reads them",
    "[e2e][metrics]") {
  TempDir dir;
  const std::string config = dir.Write("ds.json", "{\"train_micro_batch_size_per_gpu\": 1}");
  ChildProcess job({ZR_TEST_ZERORUN, "--hostfile", TestData("local2.txt"), "--config", config,
                    "--device", "cpu", "--job-id", "job-metrics", "--metrics-port", "0",
                    ZR_TEST_RANK, "--run-ms", "4000", "--report"},
                   {{"ZR_HOME", dir.path() + "/home"}});
  const int port = MetricsPort(job);
  // Until both ranks have reported a step.
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = Body(Http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    if (text.find("zerorun_rank_step{job_id=\"job-metrics\",rank=\"1\",node=\"localhost\"} 0") ==
            std::string::npos &&
        text.find("zerorun_rank_step{job_id=\"job-metrics\",rank=\"1\"") != std::string::npos &&
        text.find("zerorun_rank_step{job_id=\"job-metrics\",rank=\"0\",node=\"localhost\"} 0") ==
            std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(text);
  CheckDeclared(text);
  CHECK_THAT(text,
             Catch::Contains("zerorun_job_state{job_id=\"job-metrics\",state=\"running\"} 1"));
  CHECK_THAT(text, Catch::Contains("zerorun_job_world_size{job_id=\"job-metrics\"} 2"));
  CHECK_THAT(text, Catch::Contains("# TYPE zerorun_job_restarts_total counter"));
  CHECK_THAT(text, Catch::Contains(
                       "zerorun_rank_state{job_id=\"job-metrics\",rank=\"0\",node=\"localhost\","
                       "state=\"running\"} 1"));

  // The real parser: every family and sample, with values, as Prometheus reads them.
  const std::string scraped = dir.Write("scrape.txt", text);
  const RunResult parsed =
      Run({VenvPython(), "-c",
           "import sys\n"
           "from prometheus_client.parser import text_string_to_metric_families\n"
           "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
           "  for s in f.samples:\n"
           "    labels = ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
           "    print(f.type, s.name, labels, repr(float(s.value)))\n",
           scraped});
  {
    INFO(parsed.err);
    REQUIRE(parsed.exit_code == 0);
    CHECK_THAT(parsed.out, Catch::Contains("gauge zerorun_job_world_size job_id=job-metrics 2.0"));
    CHECK_THAT(parsed.out,
               Catch::Contains("counter zerorun_job_restarts_total job_id=job-metrics 0.0"));
    CHECK_THAT(parsed.out,
               Catch::Contains("gauge zerorun_rank_state job_id=job-metrics,node=localhost,rank=1,"
                               "state=running 1.0"));
    const std::regex step(
        "gauge zerorun_rank_step job_id=job-metrics,node=localhost,rank=0 "
        "([0-9.]+)");
    std::smatch s;
    REQUIRE(std::regex_search(parsed.out, s, step));
    CHECK(std::stod(s[1].str()) > 0);
    CHECK_THAT(parsed.out, Catch::Contains("gauge zerorun_rank_heartbeat_age_seconds"));
  }
  // Other paths and methods.
  CHECK_THAT(Http(port, "GET /other HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 404"));
  CHECK_THAT(Http(port, "POST /metrics HTTP/1.1\r\n\r\n"), Catch::StartsWith("HTTP/1.1 405"));
  CHECK(job.Wait(20) == 0);
  // The job is over: nothing listens any more.
  CHECK(Http(port, "GET /metrics HTTP/1.1\r\n\r\n").empty());
}

TEST_CASE(
    "A libzerorun rank's step-time breakdown reaches zerorun status and the metrics while it "
    "trains",
    "[e2e][metrics][step_times]") {
  TempDir dir;
  const std::string config = Config(dir, "ds.json", 4, 2, 2);
  const std::map<std::string, std::string> env = {{"ZR_HOME", dir.path() + "/home"}};
  ChildProcess job(TrainGptCommand(TestData("local2.txt"), config,
                                   {"--job-id", "job-phases", "--metrics-port", "0"},
                                   {"--random-tokens", "--steps", "100000"}),
                   env);
  const int port = MetricsPort(job);
  nlohmann::json status;
  for (int i = 0; i < 200; ++i) {
    const RunResult asked = Run({ZR_TEST_ZERORUN, "status", "job-phases", "--json"}, env);
    status = nlohmann::json::parse(asked.out, nullptr, /*allow_exceptions=*/false);
    if (status.is_object() && status["ranks"].size() == 2 &&
        !status["ranks"][0]["step_times"].is_null() &&
        !status["ranks"][1]["step_times"].is_null() && status["ranks"][1]["step"] > 3) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(status.dump(2));
  for (int r = 0; r < 2; ++r) {
    const nlohmann::json& t = status["ranks"][r]["step_times"];
    REQUIRE(t.is_object());
    const double parts = t["compute_s"].get<double>() + t["comm_wait_s"].get<double>() +
                         t["optimizer_s"].get<double>() + t["io_s"].get<double>();
    CHECK(t["seconds"].get<double>() > 0);
    CHECK(parts == Approx(t["seconds"].get<double>()).epsilon(1e-6));
    CHECK(t["compute_s"].get<double>() > 0);  // Forward and backward.
    CHECK(t["optimizer_s"].get<double>() > 0);
  }
  const RunResult text = Run({ZR_TEST_ZERORUN, "status", "job-phases"}, env);
  CHECK_THAT(text.out, Catch::Contains("COMM WAIT"));
  CHECK_THAT(text.out, Catch::Contains("most waiting on communication: rank "));
  const std::string metrics = Body(Http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  INFO(metrics);
  CheckDeclared(metrics);
  for (const char* phase : {"compute", "comm_wait", "optimizer", "io"}) {
    for (int r = 0; r < 2; ++r) {
      CHECK_THAT(metrics, Catch::Contains(absl::StrCat(
                              "zerorun_rank_step_phase_seconds{job_id=\"job-phases\",rank=\"", r,
                              "\",node=\"localhost\",phase=\"", phase, "\"} ")));
    }
  }
  CHECK_THAT(metrics,
             Catch::Contains("zerorun_rank_step_seconds{job_id=\"job-phases\",rank=\"1\""));
  CHECK(Run({ZR_TEST_ZERORUN, "stop", "job-phases"}, env).exit_code == 0);
  CHECK(job.Wait(30) != 0);
}

TEST_CASE("train_gpt writes DeepSpeed's csv_monitor and tensorboard files from the config",
          "[e2e][monitor]") {
  TempDir dir;
  const std::string config =
      dir.Write("ds.json",
                "{\"train_batch_size\": 8, \"train_micro_batch_size_per_gpu\": 2, "
                "\"csv_monitor\": {\"enabled\": true, \"output_path\": \"" +
                    dir.path() +
                    "/csv\", \"job_name\": \"gpt\"}, \"tensorboard\": {\"enabled\": true, "
                    "\"output_path\": \"" +
                    dir.path() + "/tb\"}}");
  const RunResult run =
      Run(TrainGptCommand(TestData("local2.txt"), config, {}, {"--random-tokens", "--steps", "5"}),
          {{"ZR_HOME", dir.path() + "/home"}});
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  std::ifstream csv(dir.path() + "/csv/gpt/Train_Samples_train_loss.csv");
  std::string line;
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  REQUIRE(rows.size() == 6);
  CHECK(rows[0] == "step,train_loss");
  CHECK_THAT(rows[1], Catch::StartsWith("0,"));
  CHECK_THAT(rows[5], Catch::StartsWith("32,"));  // Samples before step 5: 4 x 8.
  std::string events;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/tb/DeepSpeedJobName")) {
    events = e.path().string();
  }
  REQUIRE(!events.empty());
  const RunResult read = Run({VenvPython(), TestData("read_tfevents.py"), events});
  {
    INFO(read.err);
    REQUIRE(read.exit_code == 0);
    CHECK_THAT(read.out, Catch::Contains("scalar Train/Samples/train_loss 32 "));
    CHECK_THAT(read.out, Catch::Contains("scalar Train/Samples/lr 40 "));
  }
}

TEST_CASE("Metrics name failures by cause and escape label values", "[metrics]") {
  v1::JobStatusReply status;
  status.set_job_id("job \"q\"\\x");
  status.set_state("failed");
  status.set_attempt(2);
  status.add_failed_attempts()->set_exit_code(1);
  status.add_failed_attempts()->set_exit_code(200);
  v1::RankStatus* rank = status.add_ranks();
  rank->set_rank(3);
  rank->set_node("n\n1");
  rank->set_state("killed");
  rank->set_signal(9);
  rank->set_heartbeat_age_s(-1);
  rank->set_step_age_s(-1);
  const std::string text = launcher::FormatMetrics(status);
  INFO(text);
  const std::string job = "job_id=\"job \\\"q\\\"\\\\x\"";
  CHECK_THAT(text, Catch::Contains("zerorun_job_restarts_total{" + job + "} 2\n"));
  CHECK_THAT(text, Catch::Contains("zerorun_job_failures_total{" + job + ",cause=\"exit\"} 1\n"));
  CHECK_THAT(text,
             Catch::Contains("zerorun_job_failures_total{" + job + ",cause=\"node_lost\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("zerorun_job_failures_total{" + job + ",cause=\"signal\"} 1\n"));
  CHECK_THAT(text, Catch::Contains(",rank=\"3\",node=\"n\\n1\",state=\"killed\"} 1\n"));
  // No heartbeat yet: no age sample (not a -1).
  CHECK_THAT(text, !Catch::Contains("zerorun_rank_heartbeat_age_seconds{"));
  CHECK(launcher::FailureCause(201) == "hang");
  CHECK(launcher::FailureCause(137) == "signal");
  CHECK(launcher::FailureCause(69) == "launch");
  CheckDeclared(text);
}

}  // namespace
}  // namespace zerorun::testing
