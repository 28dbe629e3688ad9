// The effective config: resolved once with the batch triple written in, read typed with no
// default of the reader's own; the runtime's refuse/note table.
#include "dsconfig/effective.h"

#include <catch2/catch.hpp>
#include <string>

#include "dsconfig/runtime_support.h"

namespace zerorun::dsconfig {
namespace {

using json = nlohmann::json;

absl::StatusOr<json> Resolve(const std::string& text, int world_size) {
  absl::StatusOr<JsonDocument> doc = ParseConfigJson("ds.json", text);
  if (!doc.ok()) return doc.status();
  AutoInputs inputs;
  inputs.world_size = world_size;
  return ResolveEffectiveConfig(*doc, inputs);
}

TEST_CASE("Every batch derivation is written into the effective config", "[effective]") {
  struct Case {
    const char* text;
    int world;
    BatchTriple want;
  };
  const Case cases[] = {
      {R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4})", 2, {16, 4, 2}},
      {R"({"train_batch_size": 16, "gradient_accumulation_steps": 4})", 2, {16, 2, 4}},
      {R"({"train_batch_size": 24, "train_micro_batch_size_per_gpu": 2,
           "gradient_accumulation_steps": 3})",
       4,
       {24, 2, 3}},
      {R"({"train_micro_batch_size_per_gpu": 3})", 4, {12, 3, 1}},
      {R"({"train_batch_size": 12})", 3, {12, 4, 1}},
  };
  for (const Case& c : cases) {
    INFO(c.text << " on " << c.world << " ranks");
    absl::StatusOr<json> effective = Resolve(c.text, c.world);
    REQUIRE(effective.ok());
    absl::StatusOr<TrainingConfig> t = ReadTrainingConfig(*effective);
    REQUIRE(t.ok());
    CHECK(t->batch.train_batch_size == c.want.train_batch_size);
    CHECK(t->batch.micro_batch_per_gpu == c.want.micro_batch_per_gpu);
    CHECK(t->batch.gradient_accumulation_steps == c.want.gradient_accumulation_steps);
    CHECK((*effective)["gradient_accumulation_steps"] == c.want.gradient_accumulation_steps);
  }
}

TEST_CASE("DeepSpeed's defaults come from the effective config, once", "[effective]") {
  absl::StatusOr<json> s2 = Resolve(R"({"train_micro_batch_size_per_gpu": 1,
      "zero_optimization": {"stage": 2}})",
                                    1);
  REQUIRE(s2.ok());
  absl::StatusOr<TrainingConfig> t2 = ReadTrainingConfig(*s2);
  REQUIRE(t2.ok());
  CHECK(t2->gradient_clipping == 1.0);  // DeepSpeed >= 0.19.3.
  CHECK_FALSE(t2->overlap_comm);        // Off below stage 3...
  absl::StatusOr<json> s3 = Resolve(R"({"train_micro_batch_size_per_gpu": 1,
      "zero_optimization": {"stage": 3}, "bf16": {"enabled": true}})",
                                    1);
  REQUIRE(s3.ok());
  CHECK(ReadTrainingConfig(*s3)->overlap_comm);  // ...on at stage 3.
  CHECK(ReadTrainingConfig(*s3)->bf16);
}

TEST_CASE("Resolution errors name the file, the key and DeepSpeed's string", "[effective]") {
  absl::StatusOr<json> none = Resolve("{}", 2);
  CHECK(none.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(none.status().message()),
             Catch::Contains("ds.json") &&
                 Catch::Contains("Either train_batch_size or train_micro_batch_size_per_gpu"));
  absl::StatusOr<json> autos = Resolve(R"({"train_micro_batch_size_per_gpu": "auto"})", 2);
  CHECK_THAT(std::string(autos.status().message()),
             Catch::Contains("ds.json:1") && Catch::Contains("train_micro_batch_size_per_gpu") &&
                 Catch::Contains("auto"));
  absl::StatusOr<json> mismatch =
      Resolve(R"({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 4,
                  "gradient_accumulation_steps": 1})",
              2);
  CHECK_THAT(std::string(mismatch.status().message()), Catch::Contains("10 != 4 * 1 * 2"));
}

TEST_CASE("A config that was not resolved is refused, not defaulted", "[effective]") {
  absl::StatusOr<TrainingConfig> raw =
      ReadTrainingConfig(json::parse(R"({"train_micro_batch_size_per_gpu": 4})"));
  CHECK(raw.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(raw.status().message()), Catch::Contains("train_batch_size is missing") &&
                                                      Catch::Contains("ResolveEffectiveConfig"));
}

TEST_CASE("The runtime's table: refused, ignored and noted keys", "[effective][runtime]") {
  absl::StatusOr<json> effective = Resolve(R"({"train_micro_batch_size_per_gpu": 1,
      "optimizer": {"type": "Lamb"}, "wandb": {"enabled": true}, "tensorboard": {"enabled": true},
      "zero_optimization": {"stage": 2, "sub_group_size": 1e6}})",
                                           1);
  REQUIRE(effective.ok());
  std::vector<Finding> f = RuntimeSupport(*effective);
  REQUIRE(f.size() == 3);
  CHECK(f[0].status == kOk);
  CHECK_THAT(f[0].detail, Catch::Contains("zero_optimization.sub_group_size"));
  CHECK(f[1].status == kCritical);
  CHECK(f[1].exit_code == kExitConfig);
  CHECK_THAT(f[1].detail, Catch::Contains("optimizer.type is \"Lamb\"") && Catch::Contains("Fix:"));
  CHECK(f[2].status == kWarn);
  CHECK_THAT(f[2].detail, Catch::Contains("wandb.enabled"));  // tensorboard is written.
  // DeepSpeed's defaults, filled in, never count as choices.
  absl::StatusOr<json> plain = Resolve(R"({"train_micro_batch_size_per_gpu": 1})", 1);
  CHECK(RuntimeSupport(*plain).empty());
}

}  // namespace
}  // namespace zerorun::dsconfig
