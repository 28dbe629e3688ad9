// libzerorun's DeepSpeed config reading (ReadEngineConfig): every key it meets is honoured,
// refused with the key, value and fix, or reported as a note; DeepSpeed 0.19.6's defaults
// otherwise.
#include "zerorun/engine_config.h"

#include <catch2/catch.hpp>
#include <string>

#include "dsconfig/config_json.h"
#include "dsconfig/effective.h"

namespace zerorun {
namespace {

// Resolves `text` as a rank started by hand would (dsconfig, one rank; a micro batch of 8 when
// the text has no batch key), then reads it.
absl::StatusOr<EngineConfig> Parse(const std::string& text) {
  absl::StatusOr<dsconfig::JsonDocument> doc = dsconfig::ParseConfigJson("test.json", text);
  if (!doc.ok()) return doc.status();
  if (!doc->root.contains("train_batch_size") &&
      !doc->root.contains("train_micro_batch_size_per_gpu")) {
    doc->root["train_micro_batch_size_per_gpu"] = 8;
  }
  dsconfig::AutoInputs one_rank;
  one_rank.world_size = 1;
  absl::StatusOr<nlohmann::json> effective = dsconfig::ResolveEffectiveConfig(*doc, one_rank);
  if (!effective.ok()) return effective.status();
  return ReadEngineConfig(*effective);
}

TEST_CASE("DeepSpeed defaults and the stage-3 keys", "[engine_config]") {
  absl::StatusOr<EngineConfig> d = Parse(R"({"zero_optimization": {"stage": 2}})");
  REQUIRE(d.ok());
  CHECK(d->zero.stage == 2);
  CHECK(d->zero.dtype == DType::kFp32);
  CHECK_FALSE(d->zero.overlap_comm);  // DeepSpeed: off below stage 3.
  CHECK(d->zero.gradient_clipping == 1.0f);
  absl::StatusOr<EngineConfig> s3 = Parse(R"({"zero_optimization": {"stage": 3,
      "stage3_prefetch_bucket_size": 1e6, "stage3_param_persistence_threshold": 5000,
      "stage3_max_live_parameters": 2e6, "stage3_max_reuse_distance": 0}})");
  REQUIRE(s3.ok());
  CHECK(s3->zero.overlap_comm);  // DeepSpeed: on at stage 3.
  CHECK(s3->zero.prefetch_bucket_size == 1'000'000);
  CHECK(s3->zero.param_persistence_threshold == 5000);
  CHECK(s3->zero.max_live_parameters == 2'000'000);
  CHECK(s3->zero.max_reuse_distance == 0);
  CHECK(Parse(R"({"zero_optimization": {"stage": 3, "overlap_comm": false}})")->zero.overlap_comm ==
        false);
}

TEST_CASE("fp16 and bf16 blocks: loss scaler keys, accumulation dtype, conflicts",
          "[engine_config]") {
  absl::StatusOr<EngineConfig> fp16 = Parse(R"({"fp16": {"enabled": true, "initial_scale_power": 12,
      "loss_scale_window": 500, "hysteresis": 3, "min_loss_scale": 2}})");
  REQUIRE(fp16.ok());
  CHECK(fp16->zero.dtype == DType::kFp16);
  CHECK(fp16->zero.loss_scale.initial_scale_power == 12);
  CHECK(fp16->zero.loss_scale.window == 500);
  CHECK(fp16->zero.loss_scale.hysteresis == 3);
  CHECK(fp16->zero.loss_scale.min_scale == 2.0f);
  absl::StatusOr<EngineConfig> bf16 =
      Parse(R"({"bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "fp32"}})");
  REQUIRE(bf16.ok());
  CHECK(bf16->zero.dtype == DType::kBf16);
  CHECK(bf16->zero.grad_accum_fp32);
  CHECK(Parse(R"({"bfloat16": {"enabled": true}})")->zero.dtype == DType::kBf16);
  absl::StatusOr<EngineConfig> both =
      Parse(R"({"fp16": {"enabled": true}, "bf16": {"enabled": true}})");
  REQUIRE(both.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(both.status().message()), Catch::Contains("cannot be simultaneously"));
  absl::StatusOr<EngineConfig> accum =
      Parse(R"({"bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "fp16"}})");
  CHECK_THAT(std::string(accum.status().message()),
             Catch::Contains("data_types.grad_accum_dtype") && Catch::Contains("bf16"));
  absl::StatusOr<EngineConfig> negative = Parse(R"({"fp16": {"enabled": true, "loss_scale": -1}})");
  CHECK_THAT(std::string(negative.status().message()), Catch::Contains("fp16.loss_scale"));
}

TEST_CASE("Keys this runtime cannot honour are refused or noted, never ignored",
          "[engine_config]") {
  // Parameters on nvme are taken at stage 3 with their own path and buffer keys; without a path
  // they are refused naming the key. The optimizer state on nvme is taken at any stage 1-3, with
  // its path and aio block.
  absl::StatusOr<EngineConfig> nvme = Parse(
      R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme",
          "nvme_path": "/tmp", "buffer_count": 3, "buffer_size": 5e6, "max_in_cpu": 0}}})");
  REQUIRE(nvme.ok());
  CHECK(nvme->zero.param_space == MemorySpace::kNvme);
  CHECK(nvme->zero.param_nvme_path == "/tmp");
  CHECK(nvme->zero.nvme_path.empty());
  CHECK(nvme->zero.param_buffer_count == 3);
  CHECK(nvme->zero.param_buffer_size == 5'000'000);
  CHECK(nvme->zero.max_in_cpu == 0);
  absl::StatusOr<EngineConfig> no_path =
      Parse(R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}})");
  CHECK_THAT(std::string(no_path.status().message()),
             Catch::Contains("zero_optimization.offload_param.nvme_path"));
  absl::StatusOr<EngineConfig> swap = Parse(
      R"({"zero_optimization": {"stage": 2, "sub_group_size": 1000, "offload_optimizer":
          {"device": "nvme", "nvme_path": "/mnt/nvme"}}, "aio": {"block_size": 262144,
          "queue_depth": 16}})");
  REQUIRE(swap.ok());
  CHECK(swap->zero.optimizer_space == MemorySpace::kNvme);
  CHECK(swap->zero.nvme_path == "/mnt/nvme");
  CHECK(swap->zero.sub_group_size == 1000);
  CHECK(swap->zero.aio.block_size == 262144);
  CHECK(swap->zero.aio.queue_depth == 16);
  // Offload to cpu is taken (with a note: a CPU rank's state is in host memory already), at
  // stage 0 it is refused, and offload_param below stage 3 is ignored, as DeepSpeed does.
  absl::StatusOr<EngineConfig> cpu = Parse(
      R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "ratio": 0.5,
          "pin_memory": true}, "offload_param": {"device": "cpu"}}})");
  REQUIRE(cpu.ok());
  CHECK(cpu->zero.optimizer_space == MemorySpace::kHost);
  CHECK(cpu->zero.param_space == MemorySpace::kHost);
  CHECK(cpu->zero.optimizer_ratio == 0.5);
  CHECK(cpu->zero.pin_memory);
  CHECK_THAT(cpu->notes.front(), Catch::Contains("optimizer state is in host memory already"));
  CHECK_THAT(std::string(Parse(R"({"zero_optimization": {"stage": 0,
                 "offload_optimizer": {"device": "cpu"}}})")
                             .status()
                             .message()),
             Catch::Contains("use ZeRO stage 1, 2 or 3"));
  absl::StatusOr<EngineConfig> below =
      Parse(R"({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}})");
  REQUIRE(below.ok());
  CHECK(below->zero.param_space == MemorySpace::kDevice);
  CHECK_THAT(std::string(Parse(R"({"zero_optimization": {"stage": 2, "reduce_scatter": false}})")
                             .status()
                             .message()),
             Catch::Contains("zero_optimization.reduce_scatter"));
  CHECK_THAT(std::string(Parse(R"({"zero_optimization": {"stage": 5}})").status().message()),
             Catch::Contains("zero_optimization.stage"));
  CHECK_THAT(std::string(Parse(R"({"bf16": {"enabled": true}, "communication_data_type": "fp32"})")
                             .status()
                             .message()),
             Catch::Contains("communication_data_type"));
  CHECK_THAT(std::string(Parse(R"({"zero_optimization": {"stage": "auto"}})").status().message()),
             Catch::Contains("\"auto\""));
  absl::StatusOr<EngineConfig> noted = Parse(R"({"zero_optimization": {"stage": 2,
      "reduce_bucket_size": 2e8, "allgather_bucket_size": 5e8, "contiguous_gradients": false}})");
  REQUIRE(noted.ok());
  CHECK(noted->notes.size() == 2);
}

}  // namespace
}  // namespace zerorun

namespace zerorun::gpt {
namespace {

TEST_CASE("Optimizer and ZeRO++ keys that would change the result are refused", "[engine_config]") {
  for (const char* text :
       {R"({"optimizer": {"type": "Lamb", "params": {"lr": 1e-3}}})",
        R"({"optimizer": {"type": "AdamW", "params": {"amsgrad": true}}})",
        R"({"optimizer": {"type": "Adam", "params": {"adam_w_mode": false}}})",
        R"({"gradient_allreduce_op": "sum"})",
        R"({"zero_optimization": {"stage": 3, "zero_quantized_weights": true}})",
        R"({"zero_optimization": {"stage": 3, "zero_hpz_partition_size": 8}})"}) {
    INFO(text);
    absl::StatusOr<EngineConfig> d = Parse(text);
    REQUIRE(d.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(d.status().message()), Catch::Contains("Fix:"));
  }
  // DeepSpeed's names are case-insensitive, and the defaults the launcher fills in are silent.
  absl::StatusOr<EngineConfig> defaults = Parse(R"({"optimizer": {"type": "adamw", "params":
      {"amsgrad": false, "bias_correction": true, "adam_w_mode": true}},
      "gradient_predivide_factor": 1.0, "prescale_gradients": false, "sparse_gradients": false,
      "gradient_allreduce_op": "mean", "zero_optimization": {"stage": 2, "sub_group_size": 1e9,
      "reduce_bucket_size": 500000000, "allgather_bucket_size": 5e8, "mics_shard_size": -1,
      "zero_hpz_partition_size": 1, "round_robin_gradients": false}})");
  REQUIRE(defaults.ok());
  CHECK(defaults->notes.empty());
  absl::StatusOr<EngineConfig> noted =
      Parse(R"({"gradient_predivide_factor": 2.0, "zero_optimization": {"sub_group_size": 1e8}})");
  REQUIRE(noted.ok());
  CHECK(noted->notes.size() == 2);
}

}  // namespace
}  // namespace zerorun::gpt
