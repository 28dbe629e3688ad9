// DeepSpeed config reading and validation: comments, duplicates, strictness, section 20 rules.
#include <catch2/catch.hpp>

#include "dsconfig/config_json.h"
#include "dsconfig/ds_config.h"

namespace zerorun::dsconfig {
namespace {

using json = nlohmann::json;

JsonDocument Parse(const std::string& text) {
  absl::StatusOr<JsonDocument> doc = ParseConfigJson("ds.json", text);
  INFO(doc.status().ToString());
  REQUIRE(doc.ok());
  return *doc;
}

std::vector<Finding> Check(const std::string& text) { return ValidateConfig(Parse(text)); }

// The single finding whose detail mentions `needle`.
Finding Only(const std::vector<Finding>& findings, const std::string& needle) {
  std::vector<Finding> hits;
  for (const Finding& f : findings) {
    if (f.detail.find(needle) != std::string::npos) hits.push_back(f);
  }
  INFO("looking for: " << needle);
  REQUIRE(hits.size() == 1);
  return hits[0];
}

TEST_CASE("Config accepts #, // and /* */ comments and trailing commas", "[config]") {
  const JsonDocument doc = Parse(
      "# hjson comment\n{\n  // micro batch\n  \"train_micro_batch_size_per_gpu\": 4, /* x */\n"
      "  \"url\": \"http://a#b\",\n  \"zero_optimization\": {\"stage\": 2,},\n}\n");
  CHECK(doc.root["train_micro_batch_size_per_gpu"] == 4);
  CHECK(doc.root["url"] == "http://a#b");  // '#' inside a string is not a comment.
  CHECK(doc.LineOf("train_micro_batch_size_per_gpu") == 4);
  CHECK(doc.LineOf("zero_optimization.stage") == 6);
  CHECK(doc.Where("zero_optimization.stage") == "ds.json:6");
}

TEST_CASE("Duplicate keys are InvalidArgument with both line numbers", "[config]") {
  absl::StatusOr<JsonDocument> doc = ParseConfigJson(
      "ds.json", "{\n \"zero_optimization\": {\n  \"stage\": 1,\n  \"stage\": 2\n }\n}\n");
  REQUIRE(doc.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(doc.status().message()),
             Catch::Contains("ds.json:4: Duplicate keys in DeepSpeed config: [stage]") &&
                 Catch::Contains("lines 3 and 4"));
}

TEST_CASE("The same key in two different blocks is not a duplicate", "[config]") {
  const JsonDocument doc = Parse("{\"fp16\": {\"enabled\": false}, \"bf16\": {\"enabled\": true}}");
  CHECK(doc.root["bf16"]["enabled"] == true);
}

TEST_CASE("Syntax errors name the line and say unquoted keys are not accepted", "[config]") {
  absl::StatusOr<JsonDocument> doc = ParseConfigJson("ds.json", "{\n  \"a\": 1,\n  b: 2\n}\n");
  REQUIRE_FALSE(doc.ok());
  CHECK_THAT(std::string(doc.status().message()),
             Catch::Contains("ds.json:3: not valid JSON") && Catch::Contains("quote every key"));
  CHECK_FALSE(ParseConfigJson("ds.json", "[1, 2]").ok());
}

TEST_CASE("Unknown key in a strict block is CRITICAL 65 with did-you-mean", "[config]") {
  for (const char* block : {"zero_optimization", "fp16", "bf16"}) {
    INFO(block);
    const std::string known = std::string(block) == "zero_optimization" ? "stage" : "enabled";
    const std::string text =
        std::string("{\"") + block + "\": {\"" + known + "\": 1, \"overlap_com\": true}}";
    const Finding f = Only(Check(text), "overlap_com");
    CHECK(f.status == kCritical);
    CHECK(f.exit_code == kExitDataErr);
    CHECK_THAT(f.detail, Catch::Contains("DeepSpeed rejects"));
  }
  const Finding f = Only(Check("{\"zero_optimization\": {\"stagee\": 2}}"), "stagee");
  CHECK_THAT(f.detail, Catch::Contains("did you mean 'stage'"));
  const Finding offload = Only(
      Check("{\"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"devcie\": \"cpu\"}}}"),
      "devcie");
  CHECK(offload.status == kCritical);
  CHECK_THAT(offload.detail, Catch::Contains("did you mean 'device'"));
}

TEST_CASE("Unknown top-level key is a WARN, since DeepSpeed drops it silently", "[config]") {
  const Finding f =
      Only(Check("{\"train_micro_batch_size_per_gpu\": 1, \"optimzer\": {}}"), "optimzer");
  CHECK(f.status == kWarn);
  CHECK_THAT(f.detail,
             Catch::Contains("did you mean 'optimizer'") && Catch::Contains("dropped silently"));
}

TEST_CASE("Section 20: offload_param below stage 3 is a WARN", "[config][section20]") {
  const Finding f = Only(
      Check("{\"zero_optimization\": {\"stage\": 2, \"offload_param\": {\"device\": \"cpu\"}}}"),
      "offload_param is ignored");
  CHECK(f.status == kWarn);
}

TEST_CASE("Section 20: nvme optimizer offload below stage 3 is a WARN", "[config][section20]") {
  const Finding f = Only(Check("{\"zero_optimization\": {\"stage\": 1, \"offload_optimizer\": "
                               "{\"device\": \"nvme\", \"nvme_path\": \"/nvme\"}}}"),
                         "behaves as CPU offload");
  CHECK(f.status == kWarn);
}

TEST_CASE("Section 20: aio inside zero_optimization is rejected with the fix",
          "[config][section20]") {
  const Finding f =
      Only(Check("{\"zero_optimization\": {\"stage\": 3, \"aio\": {}}}"), "top-level block");
  CHECK(f.status == kCritical);
  CHECK_THAT(f.detail, Catch::Contains("move \"aio\""));
}

TEST_CASE("Section 20: aio.thread_count is a WARN naming intra_op_parallelism",
          "[config][section20]") {
  const Finding f = Only(Check("{\"aio\": {\"thread_count\": 2}}"), "thread_count");
  CHECK(f.status == kWarn);
  CHECK_THAT(f.detail, Catch::Contains("intra_op_parallelism"));
}

TEST_CASE("Section 20: max_grad_norm in optimizer params gives DeepSpeed's error",
          "[config][section20]") {
  const Finding f =
      Only(Check("{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"max_grad_norm\": 1.0}}}"),
           "max_grad_norm");
  CHECK(f.status == kCritical);
  CHECK_THAT(f.detail, Catch::Contains("'max_grad_norm' is not supported as an optimizer "
                                       "parameter, please switch to using the deepspeed "
                                       "parameter 'gradient_clipping'"));
}

TEST_CASE("Section 20: fractional value in an integer field is CRITICAL but 5e8 is fine",
          "[config][section20]") {
  const auto findings = Check(
      "{\"gradient_clipping\": 1.0, \"zero_optimization\": {\"stage\": 3, "
      "\"reduce_bucket_size\": 5e8, \"stage3_prefetch_bucket_size\": 943718.4}}");
  const Finding f = Only(findings, "fractional");
  CHECK(f.status == kCritical);
  CHECK_THAT(f.detail, Catch::Contains("stage3_prefetch_bucket_size") && Catch::Contains("943718"));
  CHECK(findings.size() == 1);
}

TEST_CASE("Section 20: fp16 and bf16 both on is CRITICAL 78", "[config][section20]") {
  const Finding f =
      Only(Check("{\"fp16\": {\"enabled\": true}, \"bf16\": {\"enabled\": true}}"), "bfloat16");
  CHECK(f.status == kCritical);
  CHECK(f.exit_code == kExitConfig);
  CHECK_THAT(f.detail, Catch::Contains("bfloat16 and fp16 modes cannot be simultaneously enabled"));
}

TEST_CASE("nvme offload without nvme_path is CRITICAL 78 with DeepSpeed's message", "[config]") {
  const Finding f = Only(
      Check("{\"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"nvme\"}}}"),
      "cannot be None");
  CHECK(f.exit_code == kExitConfig);
}

TEST_CASE("Partial offload below stage 3 and bad enums are rejected", "[config]") {
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 2, \"offload_optimizer\": {\"device\": "
                   "\"cpu\", \"ratio\": 0.5}}}"),
             "Partial offloading")
            .exit_code == kExitConfig);
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 3, \"offload_optimizer\": {\"device\": "
                   "\"gpu\"}}}"),
             "'gpu'")
            .exit_code == kExitDataErr);
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 4}}"), "stage 4").exit_code ==
        kExitDataErr);
  CHECK(Only(Check("{\"communication_data_type\": \"fp8\"}"), "fp8").status == kCritical);
  CHECK(Only(Check("{\"checkpoint\": {\"tag_validation\": \"Never\"}}"), "Never").status ==
        kCritical);
}

TEST_CASE("Wrong value types are CRITICAL 65", "[config]") {
  CHECK(Only(Check("{\"fp16\": {\"enabled\": \"yes\"}}"), "true or false").exit_code ==
        kExitDataErr);
  CHECK(Only(Check("{\"train_batch_size\": \"32\"}"), "an integer").status == kCritical);
  CHECK(Only(Check("{\"zero_optimization\": 3}"), "an object").status == kCritical);
}

TEST_CASE("Deprecated keys warn, and clash with their replacement", "[config]") {
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 2, \"cpu_offload\": true}}"), "deprecated")
            .status == kWarn);
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 2, \"cpu_offload\": true, "
                   "\"offload_optimizer\": {\"device\": \"cpu\"}}}"),
             "Cannot provide deprecated parameter 'cpu_offload'")
            .exit_code == kExitConfig);
  CHECK(Only(Check("{\"zero_optimization\": true}"), "legacy").status == kWarn);
}

TEST_CASE("Optimizer rules: 1-bit with ZeRO, torch optimizers with ZeRO", "[config]") {
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 2}, \"optimizer\": {\"type\": "
                   "\"OneBitAdam\"}}"),
             "not compatible with ZeRO")
            .exit_code == kExitConfig);
  CHECK(Only(Check("{\"zero_optimization\": {\"stage\": 1}, \"optimizer\": {\"type\": \"SGD\"}}"),
             "zero_allow_untested_optimizer")
            .status == kCritical);
  CHECK(Only(Check("{\"optimizer\": {\"type\": \"SGD\"}}"), "torch.optim").status == kWarn);
  CHECK(Only(Check("{\"optimizer\": {\"type\": \"AdamWW\"}}"), "did you mean 'adamw'").status ==
        kWarn);
  CHECK(Check("{\"optimizer\": {\"type\": \"adamw\"}, \"scheduler\": {\"type\": \"WarmupLR\"}, "
              "\"gradient_clipping\": 1.0}")
            .empty());
}

TEST_CASE("Clipping: absent (two meanings by DeepSpeed version) and 0 (off) are WARN",
          "[config][clipping]") {
  const Finding absent = Only(Check("{\"zero_optimization\": {\"stage\": 2}}"), "0.19.3");
  CHECK(absent.status == kWarn);
  CHECK_THAT(absent.detail, Catch::Contains("gradient_clipping: not set") &&
                                Catch::Contains("older releases") &&
                                Catch::Contains("Fix: write \"gradient_clipping\": 1.0"));
  const Finding off = Only(Check("{\"gradient_clipping\": 0}"), "clipping off");
  CHECK(off.status == kWarn);
  CHECK_THAT(off.detail, Catch::Contains("NaN"));
  CHECK(Check("{\"gradient_clipping\": 0.5}").empty());
}

TEST_CASE("An auto value is never a validation error", "[config]") {
  CHECK(Check("{\"train_batch_size\": \"auto\", \"fp16\": {\"enabled\": \"auto\"}, "
              "\"gradient_clipping\": \"auto\", "
              "\"zero_optimization\": {\"stage\": 3, \"reduce_bucket_size\": \"auto\"}}")
            .empty());
}

TEST_CASE("Effective config fills DeepSpeed 0.19.6 defaults", "[config][effective]") {
  const json e = EffectiveConfig(Parse("{\"zero_optimization\": {\"stage\": 3}}").root);
  CHECK(e["gradient_clipping"] == 1.0);
  CHECK(e["steps_per_print"].is_null());
  CHECK(e["zero_optimization"]["overlap_comm"] == true);  // stage 3 -> true
  CHECK(e["zero_optimization"]["stage3_prefetch_bucket_size"] == 50000000);
  CHECK(e["zero_optimization"]["reduce_bucket_size"] == 500000000);
  CHECK_FALSE(e["zero_optimization"].contains("prefetch_bucket_size"));  // alias not duplicated
  CHECK_FALSE(e["zero_optimization"].contains("offload_param"));         // not opened
  CHECK(e["fp16"]["initial_scale_power"] == 16);
  CHECK(e["bf16"]["check_grad_overflow"] == true);
  const json e2 = EffectiveConfig(Parse("{\"zero_optimization\": {\"stage\": 2, "
                                        "\"offload_optimizer\": {\"device\": \"cpu\"}}, "
                                        "\"optimizer\": {\"type\": \"Adam\"}}")
                                      .root);
  CHECK(e2["zero_optimization"]["overlap_comm"] == false);
  CHECK(e2["zero_optimization"]["offload_optimizer"]["pin_memory"] == true);
  CHECK(e2["zero_optimization"]["offload_optimizer"]["buffer_count"] == 4);
  CHECK(e2["optimizer"]["params"]["adam_w_mode"] == true);
  CHECK(e2["optimizer"]["params"]["lr"] == 1e-3);
}

TEST_CASE("Summary reflects what DeepSpeed does with offload below stage 3", "[config]") {
  const ConfigSummary s = Summarize(Parse("{\"zero_optimization\": {\"stage\": 2, "
                                          "\"offload_param\": {\"device\": \"cpu\"}, "
                                          "\"offload_optimizer\": {\"device\": \"nvme\", "
                                          "\"nvme_path\": \"/nvme\"}}}")
                                        .root);
  CHECK(s.stage == 2);
  CHECK(s.offload_param == "none");
  CHECK(s.offload_optimizer == "cpu");
  CHECK_FALSE(s.optimizer_nvme_path.has_value());
}

}  // namespace
}  // namespace zerorun::dsconfig
