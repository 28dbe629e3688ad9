// Rank numbering and environment (pure; the e2e tests check the same through real processes).
#include <catch2/catch.hpp>
#include <utility>

#include "absl/strings/match.h"
#include "inputs/train_command.h"
#include "job/launch_spec.h"

namespace zerorun::launcher {
namespace {

std::map<std::string, std::string> Env(const v1::RankSpec& spec) {
  std::map<std::string, std::string> env;
  for (const std::string& kv : spec.env())
    env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  return env;
}

TEST_CASE("Ranks are numbered host by host, slot order within a host", "[rank_env]") {
  Host a{.name = "a", .address = "10.0.0.1", .slots = {0, 1, 2}};
  Host b{.name = "b", .address = "10.0.0.2", .slots = {4, 6}};
  LaunchSpec spec{.job_id = "j", .head = {"train"}, .tail = {"--x", "1"}};
  spec.endpoints = {{"10.0.0.1", "10.0.0.9:1234", "10.0.0.1"},
                    {"10.0.0.2", "10.0.0.8:1234", "10.0.0.1"}};
  const auto requests = BuildLaunchRequests({a, b}, spec);
  REQUIRE(requests.size() == 2);
  REQUIRE(requests[1].ranks_size() == 2);
  const v1::RankSpec& r4 = requests[1].ranks(1);
  CHECK(r4.rank() == 4);
  CHECK(r4.local_rank() == 1);
  auto env = Env(r4);
  CHECK(env["RANK"] == "4");
  CHECK(env["WORLD_SIZE"] == "5");
  CHECK(env["LOCAL_SIZE"] == "2");
  CHECK(env["NODE_RANK"] == "1");
  CHECK(env["CROSS_SIZE"] == "2");
  CHECK(env["CUDA_VISIBLE_DEVICES"] == "4,6");
  // Each node gets the coordinator as it reaches it, and binds its own address.
  CHECK(env["ZERORUN_COORDINATOR"] == "10.0.0.8:1234");
  CHECK(env["ZERORUN_NODE_ADDR"] == "10.0.0.2");
  CHECK(env["MASTER_ADDR"] == "10.0.0.1");
  CHECK(Env(requests[0].ranks(0))["ZERORUN_NODE_ADDR"] == "10.0.0.1");
  CHECK(std::vector<std::string>(r4.argv().begin(), r4.argv().end()) ==
        std::vector<std::string>{"train", "--local_rank=1", "--x", "1"});
}

TEST_CASE(
    "A restarted attempt has its own agent job id and the attempt in torchrun's and our names",
    "[rank_env]") {
  Host a{.name = "a", .address = "localhost", .slots = {0}};
  LaunchSpec spec{.job_id = "job", .head = {"t"}};
  CHECK(Env(BuildLaunchRequests({a}, spec)[0].ranks(0))["ZERORUN_RESTART_COUNT"] == "0");
  CHECK(BuildLaunchRequests({a}, spec)[0].job_id() == "job");
  spec.attempt = 2;
  spec.max_restarts = 3;
  const auto requests = BuildLaunchRequests({a}, spec);
  CHECK(requests[0].job_id() == "job.restart2");
  auto env = Env(requests[0].ranks(0));
  CHECK(env["ZERORUN_JOB_ID"] == "job");  // The job's id, as `zerorun status` knows it.
  CHECK(env["ZERORUN_RESTART_COUNT"] == "2");
  CHECK(env["TORCHELASTIC_RESTART_COUNT"] == "2");
  CHECK(env["ZERORUN_MAX_RESTARTS"] == "3");
  CHECK(env["TORCHELASTIC_MAX_RESTARTS"] == "3");
}

TEST_CASE("CPU jobs get no CUDA_VISIBLE_DEVICES and --no_local_rank drops the argument",
          "[rank_env]") {
  Host a{.name = "a", .address = "localhost", .slots = {0}};
  LaunchSpec spec{.head = {"t"}, .device = v1::DEVICE_CPU, .no_local_rank = true};
  const auto requests = BuildLaunchRequests({a}, spec);
  CHECK(Env(requests[0].ranks(0)).count("CUDA_VISIBLE_DEVICES") == 0);
  CHECK(requests[0].ranks(0).argv_size() == 1);
}

TEST_CASE("DeepSpeed's launch forms put --local_rank after the script or module", "[rank_env]") {
  struct Case {
    std::string train_bin;
    std::vector<std::string> args;
    TrainCommandOptions how;
    std::vector<std::string> head, tail;
    std::string script, module;
  };
  const TrainCommandOptions plain, no_python{.no_python = true}, module{.module = true},
      python311{.python = "/opt/py/bin/python3.11"};
  const Case cases[] = {
      {"train.py", {"--lr", "1"}, plain, {"python3", "-u", "train.py"}, {"--lr", "1"}, "train.py"},
      {"train.py", {}, python311, {"/opt/py/bin/python3.11", "-u", "train.py"}, {}, "train.py"},
      {"python3",
       {"-u", "-W", "ignore", "t.py", "--x"},
       plain,
       {"python3", "-u", "-W", "ignore", "t.py"},
       {"--x"},
       "t.py"},
      {"/usr/bin/python3",
       {"-m", "pkg.train", "--x"},
       plain,
       {"/usr/bin/python3", "-m", "pkg.train"},
       {"--x"},
       "",
       "pkg.train"},
      {"python",
       {"-X", "dev", "-Bc", "print(1)", "--y"},
       plain,
       {"python", "-X", "dev", "-Bc", "print(1)"},
       {"--y"}},
      {"python3",
       {"-Wignore", "-um", "pkg"},
       plain,
       {"python3", "-Wignore", "-um", "pkg"},
       {},
       "",
       "pkg"},
      {"pkg.train",
       {"--x"},
       module,
       {"python3", "-u", "-m", "pkg.train"},
       {"--x"},
       "",
       "pkg.train"},
      {"train.py", {"--x"}, no_python, {"train.py"}, {"--x"}},
      {"./train_gpt", {"--steps", "3"}, plain, {"./train_gpt"}, {"--steps", "3"}},
  };
  for (const Case& c : cases) {
    INFO(c.train_bin);
    absl::StatusOr<TrainCommand> command = BuildTrainCommand(c.train_bin, c.args, c.how);
    REQUIRE(command.ok());
    CHECK(command->head == c.head);
    CHECK(command->tail == c.tail);
    CHECK(command->module == c.module);
    CHECK(command->script == c.script);
  }
  CHECK_FALSE(BuildTrainCommand("t.py", {}, {.no_python = true, .module = true}).ok());
  CHECK_FALSE(BuildTrainCommand("python3", {"-m"}, plain).ok());
}

TEST_CASE(
    "The zerorun engine flag starts Python programs through zerorun.engine_run after the "
    "interpreter's options and refuses what is not a Python script or module",
    "[train_command]") {
  const TrainCommandOptions plain;
  struct Case {
    std::string train_bin;
    std::vector<std::string> args;
    TrainCommandOptions how;
    std::vector<std::string> head;
  };
  const std::vector<Case> cases = {
      {"train.py", {"--lr", "1"}, plain, {"python3", "-u", "-m", kEngineRunModule, "train.py"}},
      {"pkg.train",
       {},
       {.module = true},
       {"python3", "-u", "-m", kEngineRunModule, "-m", "pkg.train"}},
      {"python3",
       {"-X", "dev", "t.py", "a"},
       plain,
       {"python3", "-X", "dev", "-m", kEngineRunModule, "t.py"}},
      {"python3", {"-mpkg", "a"}, plain, {"python3", "-m", kEngineRunModule, "-mpkg"}},
  };
  for (const Case& c : cases) {
    INFO(c.train_bin);
    absl::StatusOr<TrainCommand> command = BuildTrainCommand(c.train_bin, c.args, c.how);
    REQUIRE(command.ok());
    const std::vector<std::string> tail = command->tail;
    REQUIRE(UseZerorunEngine(&*command).ok());
    CHECK(command->head == c.head);
    CHECK(command->tail == tail);  // The program's own arguments stay as they were.
  }
  for (const auto& [bin, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"./train_gpt", {"--steps", "3"}}, {"python3", {"-c", "print(1)"}}}) {
    absl::StatusOr<TrainCommand> command = BuildTrainCommand(bin, args, plain);
    REQUIRE(command.ok());
    const absl::Status refused = UseZerorunEngine(&*command);
    CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(refused.message(), bin + " is not one"));
  }
}

}  // namespace
}  // namespace zerorun::launcher
