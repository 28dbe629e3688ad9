// Rank numbering and environment (pure; the e2e tests check the same through real processes).
#include "rank_env.h"

#include <catch2/catch.hpp>

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
  LaunchSpec spec{.job_id = "j",
                  .train_bin = "train",
                  .train_args = {"--x", "1"},
                  .master_addr = "10.0.0.1",
                  .coordinator = "10.0.0.9:1234"};
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
  CHECK(env["ZERORUN_COORDINATOR"] == "10.0.0.9:1234");
  CHECK(std::vector<std::string>(r4.argv().begin(), r4.argv().end()) ==
        std::vector<std::string>{"train", "--local_rank=1", "--x", "1"});
}

TEST_CASE("CPU jobs get no CUDA_VISIBLE_DEVICES and --no_local_rank drops the argument",
          "[rank_env]") {
  Host a{.name = "a", .address = "localhost", .slots = {0}};
  LaunchSpec spec{.train_bin = "t", .device = v1::DEVICE_CPU, .no_local_rank = true};
  const auto requests = BuildLaunchRequests({a}, spec);
  CHECK(Env(requests[0].ranks(0)).count("CUDA_VISIBLE_DEVICES") == 0);
  CHECK(requests[0].ranks(0).argv_size() == 1);
}

}  // namespace
}  // namespace zerorun::launcher
