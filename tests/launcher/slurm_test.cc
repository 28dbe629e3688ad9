// Slurm's host lists and node counts: the examples of Slurm's own documentation (hostlist(3),
// Slurm::Hostlist, srun's environment), the faults, and, where Slurm is installed, every case
// compared with `scontrol show hostnames` itself.
#include "backends/slurm.h"

#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <random>

#include "absl/strings/str_join.h"
#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::launcher {
namespace {

std::string Expanded(const std::string& list) {
  absl::StatusOr<std::vector<std::string>> hosts = ExpandHostlist(list);
  INFO(list << ": " << hosts.status().ToString());
  REQUIRE(hosts.ok());
  return absl::StrJoin(*hosts, " ");
}

const std::vector<std::pair<std::string, std::string>>& Cases() {
  static const std::vector<std::pair<std::string, std::string>> kCases = {
      {"tux[0-5,12,20-25]",
       "tux0 tux1 tux2 tux3 tux4 tux5 tux12 tux20 tux21 tux22 tux23 tux24 tux25"},
      {"linux[1-3,6]", "linux1 linux2 linux3 linux6"},
      {"node1,node[2-5,12]", "node1 node2 node3 node4 node5 node12"},
      {"node[01-04,07]", "node01 node02 node03 node04 node07"},
      {"n[08-10]", "n08 n09 n10"},
      {"n[9-11]", "n9 n10 n11"},
      {"c[001-3]", "c001 c002 c003"},
      {"rack[1-2]-gpu[1-2]", "rack1-gpu1 rack1-gpu2 rack2-gpu1 rack2-gpu2"},
      {"a b", "a b"},
      {"a,b", "a b"},
      {"n[1,1]", "n1 n1"},
      {"gpu-a100-01", "gpu-a100-01"},
  };
  return kCases;
}

TEST_CASE("Slurm host lists expand as Slurm documents them", "[slurm]") {
  for (const auto& [list, hosts] : Cases()) CHECK(Expanded(list) == hosts);
}

TEST_CASE("Bad Slurm host lists are InvalidArgument naming the list and the fault", "[slurm]") {
  const std::map<std::string, std::string> bad = {
      {"n[1-2", "'[' without ']'"},
      {"n1-2]", "']' without '['"},
      {"n[3-1]", "runs backwards"},
      {"n[a-b]", "not a number"},
      {"n[]", "not a number"},
      {"n[1-3]x", "text after the last ']'"},
      {"n[0-70000]", "more than 65536"},
      {"", "no hosts"},
      {"n[[1]]", "nested"},
  };
  for (const auto& [list, why] : bad) {
    const absl::StatusOr<std::vector<std::string>> hosts = ExpandHostlist(list);
    INFO(list);
    REQUIRE_FALSE(hosts.ok());
    CHECK(hosts.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(hosts.status().message()),
               Catch::Contains("'" + list + "'") && Catch::Contains(why));
  }
}

TEST_CASE("The host lists expand exactly as scontrol show hostnames does", "[slurm]") {
  testing::TempDir dir;
  const std::string conf = dir.Write("slurm.conf", "ClusterName=zr\nSlurmctldHost=localhost\n");
  const testing::RunResult probe =
      testing::Run({"/usr/bin/scontrol", "show", "hostnames", "a"}, {{"SLURM_CONF", conf}});
  if (probe.exit_code != 0) {
    WARN("skipped: no scontrol (Slurm's client) on this machine");
    return;
  }
  for (const auto& [list, hosts] : Cases()) {
    const testing::RunResult real =
        testing::Run({"/usr/bin/scontrol", "show", "hostnames", list}, {{"SLURM_CONF", conf}});
    std::string words = real.out;
    for (char& c : words) c = c == '\n' ? ' ' : c;
    while (!words.empty() && words.back() == ' ') words.pop_back();
    INFO(list);
    CHECK(Expanded(list) == words);
  }
}

// A random node list of 1-3 names, each with 0-4 brackets of 1-3 numbers or ranges (some
// zero-padded), as sbatch and salloc might hand one over.
std::string RandomNodelist(std::mt19937& rng) {
  auto pick = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const char* stems[] = {"n", "rack", "gpu", "a-", "node-", "x", "c1-"};
  std::string list;
  const int names = pick(1, 3);
  for (int n = 0; n < names; ++n) {
    if (n > 0) list += ',';
    const int brackets = pick(0, 4);
    list += stems[pick(0, 6)];
    for (int b = 0; b < brackets; ++b) {
      if (b > 0) list += stems[pick(0, 6)];
      list += '[';
      const int ranges = pick(1, brackets > 2 ? 1 : 3);
      for (int r = 0; r < ranges; ++r) {
        if (r > 0) list += ',';
        const int width = pick(1, 3);
        const int lo = pick(0, 12);
        std::string low = std::to_string(lo);
        if (pick(0, 1) == 1 && static_cast<int>(low.size()) < width) {
          low.insert(0, static_cast<size_t>(width) - low.size(), '0');
        }
        list += low;
        if (pick(0, 2) > 0) list += "-" + std::to_string(lo + pick(0, brackets > 2 ? 1 : 3));
      }
      list += ']';
    }
    if (brackets == 0) list += std::to_string(pick(0, 99));
  }
  return list;
}

TEST_CASE("Generated node lists expand exactly as scontrol show hostnames does", "[slurm]") {
  testing::TempDir dir;
  const std::string conf = dir.Write("slurm.conf", "ClusterName=zr\nSlurmctldHost=localhost\n");
  if (testing::Run({"/usr/bin/scontrol", "show", "hostnames", "a"}, {{"SLURM_CONF", conf}})
          .exit_code != 0) {
    WARN("skipped: no scontrol (Slurm's client) on this machine");
    return;
  }
  std::mt19937 rng(20261206);
  int compared = 0;
  for (int i = 0; i < 400; ++i) {
    const std::string list = RandomNodelist(rng);
    const testing::RunResult real =
        testing::Run({"/usr/bin/scontrol", "show", "hostnames", list}, {{"SLURM_CONF", conf}});
    absl::StatusOr<std::vector<std::string>> ours = ExpandHostlist(list);
    INFO(list << " -> scontrol: " << real.out << real.err << " ours: " << ours.status());
    if (real.exit_code != 0) {
      CHECK_FALSE(ours.ok());  // What Slurm refuses, zerorun refuses.
      continue;
    }
    std::string words = real.out;
    for (char& c : words) c = c == '\n' ? ' ' : c;
    while (!words.empty() && words.back() == ' ') words.pop_back();
    REQUIRE(ours.ok());
    CHECK(absl::StrJoin(*ours, " ") == words);
    ++compared;
  }
  CHECK(compared > 300);
}

TEST_CASE("Slurm node counts expand N(xM)", "[slurm]") {
  CHECK(*ExpandNodeCounts("4(x2),2,8") == std::vector<int>{4, 4, 2, 8});
  CHECK(*ExpandNodeCounts("72") == std::vector<int>{72});
  for (const char* bad : {"", "4(x)", "4(x0)", "x2", "4(2)", "4(x2", "-1"}) {
    INFO(bad);
    CHECK(ExpandNodeCounts(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

std::function<std::optional<std::string>(const char*)> Env(
    std::map<std::string, std::string> values) {
  return [values](const char* name) -> std::optional<std::string> {
    auto it = values.find(name);
    return it != values.end() ? std::optional<std::string>(it->second) : std::nullopt;
  };
}

TEST_CASE("A Slurm allocation's hosts and slots come from its environment", "[slurm]") {
  // sbatch -N3 --ntasks-per-node=2
  absl::StatusOr<SlurmAllocation> a =
      AllocationFromEnvironment(Env({{"SLURM_JOB_ID", "42"},
                                     {"SLURM_JOB_NODELIST", "gpu[01-02,07]"},
                                     {"SLURM_NTASKS_PER_NODE", "2"},
                                     {"SLURM_JOB_CPUS_PER_NODE", "64(x3)"}}),
                                true);
  REQUIRE(a.ok());
  CHECK(a->nodes == std::vector<std::string>{"gpu01", "gpu02", "gpu07"});
  CHECK(a->slots == std::vector<int>{2, 2, 2});
  CHECK(a->slots_from == "SLURM_NTASKS_PER_NODE=2");
  // sbatch -n5 over two nodes: as Slurm spread the tasks.
  a = AllocationFromEnvironment(Env({{"SLURM_JOB_ID", "43"},
                                     {"SLURM_JOB_NODELIST", "n[1-2]"},
                                     {"SLURM_NTASKS", "5"},
                                     {"SLURM_TASKS_PER_NODE", "3,2"}}),
                                false);
  REQUIRE(a.ok());
  CHECK(a->slots == std::vector<int>{3, 2});
  // --gpus-per-node=a100:4, no task count: one rank per GPU.
  a = AllocationFromEnvironment(Env({{"SLURM_JOB_ID", "44"},
                                     {"SLURM_JOB_NODELIST", "n[1-2]"},
                                     {"SLURM_GPUS_PER_NODE", "a100:4"},
                                     {"SLURM_JOB_CPUS_PER_NODE", "32(x2)"}}),
                                true);
  REQUIRE(a.ok());
  CHECK(a->slots == std::vector<int>{4, 4});
  // CPU ranks, nothing else said: one per allocated CPU.
  a = AllocationFromEnvironment(Env({{"SLURM_JOB_ID", "45"},
                                     {"SLURM_JOB_NODELIST", "n[1-3]"},
                                     {"SLURM_JOB_CPUS_PER_NODE", "4(x2),2"}}),
                                false);
  REQUIRE(a.ok());
  CHECK(a->slots == std::vector<int>{4, 4, 2});
  const std::string yaml = AllocationHostfile(*a, {29601, 29602, 29603});
  CHECK_THAT(yaml, Catch::Contains("  - {name: n3, agent_port: 29603, slots: 2}\n"));
}

TEST_CASE("Outside an allocation or with counts that do not fit, the variable is named",
          "[slurm]") {
  const absl::StatusOr<SlurmAllocation> none = AllocationFromEnvironment(Env({}), true);
  CHECK(none.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(none.status().message()),
             Catch::Contains("SLURM_JOB_ID is not set") && Catch::Contains("salloc"));
  const absl::StatusOr<SlurmAllocation> misfit =
      AllocationFromEnvironment(Env({{"SLURM_JOB_ID", "1"},
                                     {"SLURM_JOB_NODELIST", "n[1-3]"},
                                     {"SLURM_JOB_CPUS_PER_NODE", "4(x2)"}}),
                                false);
  CHECK(misfit.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(misfit.status().message()),
             Catch::Contains("SLURM_JOB_CPUS_PER_NODE='4(x2)' gives 2 node(s)"));
}

}  // namespace
}  // namespace zerorun::launcher
