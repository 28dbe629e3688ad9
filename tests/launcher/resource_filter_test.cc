// Resource filter: DeepSpeed's rules (reference section 3) and its three bugs, fixed.
#include "inputs/resource_filter.h"

#include <catch2/catch.hpp>

namespace zerorun::launcher {
namespace {

Hostfile TwoNodes() {
  absl::StatusOr<Hostfile> h =
      ParseHostfile("hosts", "worker-0 slots=4\nworker-1 slots=4\nworker-2 slots=2\n");
  REQUIRE(h.ok());
  return *h;
}

ResourcePlan Apply(const FilterOptions& options) {
  absl::StatusOr<ResourcePlan> plan = ApplyFilter(TwoNodes(), options);
  INFO(plan.status().ToString());
  REQUIRE(plan.ok());
  return *plan;
}

absl::Status Fails(const FilterOptions& options) {
  absl::StatusOr<ResourcePlan> plan = ApplyFilter(TwoNodes(), options);
  REQUIRE_FALSE(plan.ok());
  return plan.status();
}

TEST_CASE("No filter keeps every host and slot", "[filter]") {
  const ResourcePlan plan = Apply({});
  CHECK(plan.hosts.size() == 3);
  CHECK(plan.WorldSize() == 10);
}

TEST_CASE("Whole-node include keeps all its slots (DeepSpeed bug 1 fixed)", "[filter]") {
  const ResourcePlan plan = Apply({.include = "worker-0"});
  REQUIRE(plan.hosts.size() == 1);
  CHECK(plan.hosts[0].slots == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("Include a@b:0,2 keeps all of a and slots 0,2 of b (DeepSpeed bug 2 fixed)", "[filter]") {
  const ResourcePlan plan = Apply({.include = "worker-0@worker-1:0,2"});
  REQUIRE(plan.hosts.size() == 2);
  CHECK(plan.hosts[0].slots == std::vector<int>{0, 1, 2, 3});
  CHECK(plan.hosts[1].slots == std::vector<int>{0, 2});
}

TEST_CASE("Include slots are checked against slots= (DeepSpeed bug 3 fixed)", "[filter]") {
  const absl::Status s = Fails({.include = "worker-0:7"});
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(
      std::string(s.message()),
      Catch::Contains("No slot '7' specified on host 'worker-0'") && Catch::Contains("0,1,2,3"));
}

TEST_CASE("Result is in hostfile order, merged and de-duplicated", "[filter]") {
  const ResourcePlan plan = Apply({.include = "worker-2:1@worker-0:3,1@worker-0:1"});
  REQUIRE(plan.hosts.size() == 2);
  CHECK(plan.hosts[0].name == "worker-0");
  CHECK(plan.hosts[0].slots == std::vector<int>{1, 3});
  CHECK(plan.hosts[1].name == "worker-2");
}

TEST_CASE("Exclude removes slots or whole nodes and hosts left empty are dropped", "[filter]") {
  const ResourcePlan plan = Apply({.exclude = "worker-1@worker-2:0,1@worker-0:0"});
  REQUIRE(plan.hosts.size() == 1);
  CHECK(plan.hosts[0].slots == std::vector<int>{1, 2, 3});
}

TEST_CASE("Exclude of a missing slot is FailedPrecondition with DeepSpeed's message", "[filter]") {
  CHECK_THAT(std::string(Fails({.exclude = "worker-2:5"}).message()),
             Catch::Contains("No slot '5' specified on host 'worker-2'"));
}

TEST_CASE("Unknown host is FailedPrecondition naming the hostfile's hosts", "[filter]") {
  const absl::Status s = Fails({.include = "worker-9"});
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(s.message()),
             Catch::Contains("Hostname 'worker-9' not found in hostfile") &&
                 Catch::Contains("worker-0, worker-1, worker-2"));
}

TEST_CASE("Include with exclude is InvalidArgument with DeepSpeed's message", "[filter]") {
  const absl::Status s = Fails({.include = "worker-0", .exclude = "worker-1"});
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(s.message()),
             Catch::Contains("include_str and exclude_str are mutually exclusive."));
}

TEST_CASE("num_nodes or num_gpus with include/exclude is InvalidArgument", "[filter]") {
  for (FilterOptions o : {FilterOptions{.include = "worker-0", .num_nodes = 1},
                          FilterOptions{.exclude = "worker-0", .num_gpus = 0}}) {
    CHECK_THAT(std::string(Fails(o).message()),
               Catch::Contains("Cannot specify num_nodes/gpus with include/exclude"));
  }
}

TEST_CASE("Malformed specs get a real message, not an int-parse error", "[filter]") {
  struct Case {
    const char* spec;
    const char* says;
  };
  for (const Case c :
       {Case{"worker-0:a", "slot 'a' of host 'worker-0' is not a GPU index"},
        Case{"worker-0:", "has no slot after ':'"}, Case{"worker-0:1:2", "more than one ':'"},
        Case{"worker-0@", "stray '@'"}, Case{":1", "has no host name"},
        Case{"worker-0:-1", "not a GPU index"}, Case{"worker-0:1,,2", "slot '' of host"}}) {
    INFO(c.spec);
    const absl::Status s = Fails({.include = c.spec});
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Contains(c.says) &&
                                             Catch::Contains("NAME[:SLOT[,SLOT...]]") &&
                                             Catch::Contains("--include"));
  }
}

TEST_CASE("num_nodes keeps the first N hosts and out-of-range N is FailedPrecondition",
          "[filter]") {
  CHECK(Apply({.num_nodes = 2}).hosts.size() == 2);
  CHECK_THAT(std::string(Fails({.num_nodes = 4}).message()), Catch::Contains("from 1 to 3"));
  CHECK(Fails({.num_nodes = 0}).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("num_gpus gives every host slots 0..N-1 and warns past slots=", "[filter]") {
  const ResourcePlan plan = Apply({.num_gpus = 3});
  REQUIRE(plan.hosts.size() == 3);
  for (const Host& h : plan.hosts) CHECK(h.slots == std::vector<int>{0, 1, 2});
  REQUIRE(plan.warnings.size() == 1);
  CHECK_THAT(plan.warnings[0], Catch::Contains("worker-2"));
}

TEST_CASE("num_nodes above 1 without a hostfile is DeepSpeed's error", "[filter]") {
  absl::StatusOr<ResourcePlan> plan = ApplyFilter(LocalHostfile({0, 1}), {.num_nodes = 2});
  REQUIRE_FALSE(plan.ok());
  CHECK_THAT(std::string(plan.status().message()),
             Catch::Contains("Num nodes is >1 but no extra nodes available via hostfile"));
}

TEST_CASE("A filter that leaves nothing is FailedPrecondition", "[filter]") {
  absl::StatusOr<Hostfile> h = ParseHostfile("hosts", "w0 slots=0\n");
  REQUIRE(h.ok());
  absl::StatusOr<ResourcePlan> plan = ApplyFilter(*h, {});
  REQUIRE_FALSE(plan.ok());
  CHECK_THAT(std::string(plan.status().message()), Catch::Contains("no slots left"));
}

TEST_CASE("CUDA_VISIBLE_DEVICES becomes --include localhost:<ids> without filter flags",
          "[filter][cvd]") {
  FilterOptions options;
  std::string note;
  REQUIRE(ApplyVisibleDevices("1,3", &options, &note).ok());
  CHECK(options.include == "localhost:1,3");
  const ResourcePlan plan = *ApplyFilter(LocalHostfile({0, 1, 2, 3}), options);
  CHECK(plan.hosts[0].slots == std::vector<int>{1, 3});
  // Non-contiguous ids beyond the local GPUs are refused, not passed through.
  FilterOptions bad;
  REQUIRE(ApplyVisibleDevices("4,5", &bad, &note).ok());
  CHECK_FALSE(ApplyFilter(LocalHostfile({0, 1}), bad).ok());
}

TEST_CASE("CUDA_VISIBLE_DEVICES is ignored with a note when filter flags are given",
          "[filter][cvd]") {
  FilterOptions options{.num_gpus = 1};
  std::string note;
  REQUIRE(ApplyVisibleDevices("1", &options, &note).ok());
  CHECK(options.include.empty());
  CHECK_THAT(note, Catch::Contains("ignoring it"));
}

TEST_CASE("CUDA_VISIBLE_DEVICES with UUIDs is InvalidArgument", "[filter][cvd]") {
  FilterOptions options;
  std::string note;
  CHECK(ApplyVisibleDevices("GPU-1234", &options, &note).code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace zerorun::launcher
