// e2e: `zerorun estimate` prints DeepSpeed's tables for flags or a filtered hostfile.
#include <catch2/catch.hpp>

#include "support/subprocess.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

TEST_CASE("estimate prints DeepSpeed's ZeRO-2 and ZeRO-3 tables", "[e2e][estimate]") {
  const RunResult r = Zerorun({"estimate", "--params", "7B", "--largest-layer-params", "131M",
                               "--nodes", "2", "--gpus-per-node", "8"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("HW: Setup with 2 nodes, 8 GPUs per node.") &&
                        Catch::Contains("SW: Model with 7000M total params.") &&
                        Catch::Contains("SW: Model with 7000M total params, 131M largest layer "
                                        "params.") &&
                        Catch::Contains("    88.01GB |   0.49GB | offload_param=cpu , "
                                        "offload_optimizer=cpu , zero_init=1") &&
                        Catch::Contains("     5.86GB |   7.82GB | offload_param=none, "
                                        "offload_optimizer=none, zero_init=1"));
}

TEST_CASE("estimate takes nodes and GPUs from a filtered hostfile", "[e2e][estimate]") {
  TempDir dir;
  const std::string hosts = dir.Write("hosts", "a slots=8\nb slots=8\nc slots=8\n");
  const RunResult r = Zerorun({"estimate", "--params", "7e9", "-H", hosts, "--exclude", "c"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("HW: Setup with 2 nodes, 8 GPUs per node.") &&
                        Catch::Contains("note: --largest-layer-params not given"));
  CHECK(Zerorun({"estimate", "--params", "7e9", "-H", dir.path() + "/none"}).exit_code == 66);
  CHECK(Zerorun({"estimate", "--params", "lots"}).exit_code == 2);
  CHECK(Zerorun({"estimate"}).exit_code == 2);
}

TEST_CASE("estimate says which stage fits and what each costs in communication",
          "[e2e][estimate]") {
  const RunResult r = Zerorun({"estimate", "--params", "7B", "--largest-layer-params", "131M",
                               "--nodes", "1", "--gpus-per-node", "8", "--gpu-memory-gib", "24"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  // 7B on 8 x 24 GiB: stages 0-2 do not fit (104, 36, 28 GiB), stage 2 with the optimizer on
  // the CPU does (13 GiB) and moves no more bytes over the network than stage 2.
  CHECK_THAT(r.out, Catch::Contains("Which stage: 7e+09 parameters on 1 node(s) x 8 GPU(s), "
                                    "24.0 GiB per GPU") &&
                        Catch::Contains("stage 2 ") && Catch::Contains("27.71") &&
                        Catch::Contains("stage 3 ") && Catch::Contains("1.5x") &&
                        Catch::Contains("smallest that fits: stage 2 with offload_optimizer cpu"));
  const RunResult tiny = Zerorun({"estimate", "--params", "70B", "--largest-layer-params", "1B",
                                  "--gpus-per-node", "1", "--gpu-memory-gib", "1"});
  CHECK_THAT(tiny.out, Catch::Contains("nothing fits"));
  const RunResult none = Zerorun({"estimate", "--params", "1B"});
  CHECK_THAT(none.out, Catch::Contains("pass --gpu-memory-gib G for a verdict"));
}

}  // namespace
}  // namespace zerorun::testing
