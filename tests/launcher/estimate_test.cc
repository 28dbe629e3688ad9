// Memory estimators: DeepSpeed's formulas, its worked examples and its printed table format.
#include "preflight/estimate.h"

#include <catch2/catch.hpp>

namespace zerorun::launcher {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

TEST_CASE("ZeRO-2 estimator matches DeepSpeed's worked example (7B on 1x8)", "[estimate]") {
  const auto rows = Zero2Estimate(7e9, 8, 1);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].gpu_bytes / kGiB == Approx(13.04).margin(0.005));   // offload: 2P
  CHECK(rows[0].cpu_bytes / kGiB == Approx(312.92).margin(0.005));  // P*max(4T,16)*1.5
  CHECK(rows[1].gpu_bytes / kGiB == Approx(27.71).margin(0.005));   // 2P + 18P/T
  CHECK(rows[1].cpu_bytes == 4 * 7e9 * 8 * 1.5);
}

TEST_CASE("ZeRO-3 estimator matches DeepSpeed's worked example (7B, 2x8)", "[estimate]") {
  const auto rows = Zero3Estimate(7e9, 131e6, 8, 2);
  REQUIRE(rows.size() == 6);
  CHECK(rows[0].options == "offload_param=cpu , offload_optimizer=cpu , zero_init=1");
  CHECK(rows[0].gpu_bytes / kGiB == Approx(0.49).margin(0.005));
  CHECK(rows[0].cpu_bytes / kGiB == Approx(88.0).margin(0.05));
  CHECK(rows[4].options == "offload_param=none, offload_optimizer=none, zero_init=1");
  CHECK(rows[4].gpu_bytes / kGiB == Approx(7.82).margin(0.005));
  CHECK(rows[4].cpu_bytes / kGiB == Approx(5.86).margin(0.005));
  CHECK(rows[5].cpu_bytes == 4 * 7e9 * 8 * 1.5);
  CHECK(rows[3].cpu_bytes == 7e9 * std::max(4.0 * 8, 16.0 / 2) * 1.5);
}

TEST_CASE("Estimator tables print as DeepSpeed prints them", "[estimate]") {
  CHECK(FormatZero2Table(7e9, 8, 1) ==
        "Estimated memory needed for params, optim states and gradients for a:\n"
        "HW: Setup with 1 node, 8 GPUs per node.\n"
        "SW: Model with 7000M total params.\n"
        "  per CPU  |  per GPU |   Options\n"
        "   312.92GB |  13.04GB | offload_optimizer=cpu \n"
        "   312.92GB |  27.71GB | offload_optimizer=none\n");
  const std::string z3 = FormatZero3Table(60e6, 16e6, 1, 1);
  CHECK_THAT(z3,
             Catch::Contains("HW: Setup with 1 node, 1 GPU per node.\n") &&
                 Catch::Contains("SW: Model with 60M total params, 16M largest layer params.") &&
                 Catch::Contains("     1.51GB |   0.06GB | offload_param=cpu , "
                                 "offload_optimizer=cpu , zero_init=1"));
}

TEST_CASE("Model-state need follows the ZeRO table for CPU and GPU jobs", "[estimate]") {
  const double p = 1e9;
  // CPU job, 2 local ranks of 4: fp32 stage 2 is 4P + 12P/W per rank.
  MemoryNeed cpu = ModelStateNeed(2, "none", "none", true, p, 0, 2, 4, 2);
  CHECK(cpu.host_bytes_per_node == 2 * (4 * p + 12 * p / 4));
  CHECK(ModelStateNeed(3, "none", "none", true, p, 0, 1, 4, 4).host_bytes_per_node == 16 * p / 4);
  // GPU stage 1: 4P + 12P/W; stage 0: 16P; stage 2 and 3 use DeepSpeed's estimator.
  CHECK(ModelStateNeed(1, "none", "none", false, p, 0, 8, 8, 1).gpu_bytes_per_gpu ==
        4 * p + 12 * p / 8);
  CHECK(ModelStateNeed(0, "none", "none", false, p, 0, 8, 8, 1).gpu_bytes_per_gpu == 16 * p);
  CHECK(ModelStateNeed(2, "cpu", "none", false, p, 0, 8, 8, 1).gpu_bytes_per_gpu == 2 * p);
  CHECK(ModelStateNeed(3, "cpu", "cpu", false, p, 1e8, 8, 16, 2).gpu_bytes_per_gpu == 4e8);
}

TEST_CASE("NVMe swap size formula", "[estimate]") {
  // The larger of DeepSpeed's 12P [+ 2P] and libzerorun's layout: m, v, the masters (16-bit),
  // the accumulator (stages 2-3; 2 or 4 bytes) and stage 3's parameter shards.
  dsconfig::ConfigSummary fp32;
  fp32.stage = 3;
  fp32.offload_optimizer = "nvme";
  CHECK(NvmeSwapBytes(1e9, fp32, 8, 16) == 8 * 12e9 / 16 * 1.2);  // 8 + 4: the same.
  dsconfig::ConfigSummary bf16 = fp32;
  bf16.bf16 = true;
  CHECK(NvmeSwapBytes(1e9, bf16, 8, 16) == 8 * 14e9 / 16 * 1.2);  // 8 + 4 + 2.
  bf16.offload_param = "nvme";
  CHECK(NvmeSwapBytes(1e9, bf16, 8, 16) == 8 * 16e9 / 16 * 1.2);  // + 2.
  bf16.grad_accum_fp32 = true;
  CHECK(NvmeSwapBytes(1e9, bf16, 8, 16) == 8 * 18e9 / 16 * 1.2);
  dsconfig::ConfigSummary stage1 = fp32;
  stage1.stage = 1;
  CHECK(NvmeSwapBytes(1e9, stage1, 8, 16) == 8 * 12e9 / 16 * 1.2);  // DeepSpeed's 12 > 8.
}

TEST_CASE("NVMe read-ahead ring in host memory", "[estimate]") {
  // fp32 stage 3: m, v and the accumulator (3 arrays, 12 B); buffer_count 4 -> the minimum 3
  // chunks, each min(sub_group_size, largest layer / W), plus one for the bounce buffer.
  dsconfig::ConfigSummary c;
  c.stage = 3;
  c.offload_optimizer = "nvme";
  CHECK(NvmeRingBytes(1e9, 1e8, c, 8, 16) == 8 * (3 + 1) * 6.25e6 * 12);
  c.sub_group_size = 1e6;
  CHECK(NvmeRingBytes(1e9, 1e8, c, 8, 16) == 8 * (3 + 1) * 1e6 * 12);
  // bf16 (+ masters, 2-byte accumulator: 14 B, 4 arrays), buffer_count 128 -> 32 chunks, more
  // than the shard holds: the ring is capped at the shard.
  c.bf16 = true;
  c.sub_group_size = 1e9;
  c.optimizer_buffer_count = 128;
  CHECK(NvmeRingBytes(1e9, 1e8, c, 8, 16) == 8 * (6.25e7 + 6.25e6) * 14);
  CHECK_THAT(NvmeRingFormula(c, 1), Catch::Contains("32 chunks"));
  // The largest layer unknown: the chunk bound is the shard. Below stage 3, libzerorun's path.
  CHECK(NvmeRingBytes(1e9, 0, c, 1, 16) == (6.25e7 + 6.25e7) * 14);
  dsconfig::ConfigSummary stage2;
  stage2.stage = 2;
  stage2.offload_optimizer = "cpu";
  CHECK(NvmeRingBytes(1e9, 1e8, stage2, 8, 16) == 0);
  stage2.optimizer_nvme_path_libzerorun = "/nvme";
  CHECK(NvmeRingBytes(1e9, 1e8, stage2, 8, 16) == 8 * 4 * 6.25e6 * 12);
  CHECK(NvmeOptimizerBytes(1e9, stage2, 8, 16) == 8 * 6.25e7 * 12);
  // Summarize reads the two keys.
  const dsconfig::ConfigSummary read = dsconfig::Summarize(nlohmann::json::parse(
      R"({"zero_optimization": {"stage": 3, "sub_group_size": 5000,
          "offload_optimizer": {"device": "nvme", "nvme_path": "/x", "buffer_count": 16}}})"));
  CHECK(read.sub_group_size == 5000);
  CHECK(read.optimizer_buffer_count == 16);
  CHECK(read.optimizer_on_nvme());
}

}  // namespace
}  // namespace zerorun::launcher
