// "auto" resolution: flag > train argument > HF default > unresolved, each with its source.
#include "dsconfig/auto_values.h"

#include <catch2/catch.hpp>

namespace zerorun::dsconfig {
namespace {

using json = nlohmann::json;

const json kHfConfig = json::parse(R"({
  "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
  "fp16": {"enabled": "auto"}, "bf16": {"enabled": "auto"},
  "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                           "weight_decay": "auto"}},
  "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto",
      "warmup_max_lr": "auto", "warmup_num_steps": "auto", "total_num_steps": "auto"}},
  "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto",
      "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
      "sub_group_size": "auto"}
})");

const AutoValue& Find(const std::vector<AutoValue>& values, const std::string& key) {
  for (const AutoValue& v : values) {
    if (v.key == key) return v;
  }
  FAIL("no entry for " << key);
  return values.front();
}

TEST_CASE("Without flags or train arguments every auto is unresolved with a hint", "[auto]") {
  json config = kHfConfig;
  const auto values = ResolveAutoValues(&config, {.world_size = 4});
  REQUIRE(values.size() == 18);
  for (const AutoValue& v : values) {
    INFO(v.key);
    CHECK_FALSE(v.resolved);
    CHECK_FALSE(v.source.empty());
  }
  CHECK(values[0].key == "train_micro_batch_size_per_gpu");
  CHECK(values[2].key == "train_batch_size");
  CHECK_THAT(Find(values, "train_micro_batch_size_per_gpu").source,
             Catch::Contains("--micro-batch-size"));
  CHECK_THAT(Find(values, "zero_optimization.sub_group_size").source,
             Catch::Contains("uses its default 1000000000"));
  CHECK(config["train_batch_size"] == "auto");  // Unresolved values stay as written.
}

TEST_CASE("zerorun flags fill the batch and HF's hidden-size rules", "[auto]") {
  json config = kHfConfig;
  AutoInputs in{.micro_batch = 4, .grad_accum = 2, .hidden_size = 1024, .world_size = 3};
  const auto values = ResolveAutoValues(&config, in);
  CHECK(config["train_micro_batch_size_per_gpu"] == 4);
  CHECK(config["gradient_accumulation_steps"] == 2);
  CHECK(config["train_batch_size"] == 24);
  CHECK_THAT(Find(values, "train_batch_size").source, Catch::Contains("3 x 4 x 2"));
  CHECK(config["zero_optimization"]["reduce_bucket_size"] == 1024 * 1024);
  CHECK(config["zero_optimization"]["stage3_prefetch_bucket_size"] == 943718);  // an integer
  CHECK(config["zero_optimization"]["stage3_param_persistence_threshold"] == 10240);
}

TEST_CASE("HF-style train arguments fill auto and say so", "[auto]") {
  json config = kHfConfig;
  AutoInputs in{
      .train_args = {"--per_device_train_batch_size", "8", "--gradient_accumulation_steps=4",
                     "--learning_rate", "3e-5", "--max_grad_norm", "0.5", "--bf16", "--max_steps",
                     "1000", "--warmup_ratio", "0.1"},
      .world_size = 2};
  const auto values = ResolveAutoValues(&config, in);
  CHECK(config["train_batch_size"] == 64);
  CHECK(config["gradient_clipping"] == 0.5);
  CHECK(config["bf16"]["enabled"] == true);
  CHECK(config["optimizer"]["params"]["lr"] == 3e-5);
  CHECK(config["scheduler"]["params"]["warmup_max_lr"] == 3e-5);
  CHECK(config["scheduler"]["params"]["total_num_steps"] == 1000);
  CHECK(config["scheduler"]["params"]["warmup_num_steps"] == 100);
  CHECK_THAT(Find(values, "train_micro_batch_size_per_gpu").source,
             Catch::Contains("--per_device_train_batch_size 8 in the train command"));
  // Without --deepspeed in the arguments, HF's defaults are not assumed.
  CHECK_FALSE(Find(values, "fp16.enabled").resolved);
  CHECK_FALSE(Find(values, "optimizer.params.eps").resolved);
}

TEST_CASE("With --deepspeed in the train command HF Trainer's defaults apply", "[auto]") {
  json config = kHfConfig;
  AutoInputs in{.train_args = {"--deepspeed", "ds.json"}, .world_size = 2};
  const auto values = ResolveAutoValues(&config, in);
  CHECK(config["train_micro_batch_size_per_gpu"] == 8);
  CHECK(config["gradient_accumulation_steps"] == 1);
  CHECK(config["train_batch_size"] == 16);
  CHECK(config["gradient_clipping"] == 1.0);
  CHECK(config["fp16"]["enabled"] == false);
  CHECK(config["optimizer"]["params"]["betas"] == json::array({0.9, 0.999}));
  CHECK(config["optimizer"]["params"]["lr"] == 5e-5);
  CHECK_THAT(Find(values, "gradient_clipping").source, Catch::Contains("HF Trainer default"));
  CHECK_FALSE(Find(values, "scheduler.params.total_num_steps").resolved);  // Needs the dataset.
}

TEST_CASE("A zerorun flag wins over the train argument", "[auto]") {
  json config = {{"train_micro_batch_size_per_gpu", "auto"}};
  const auto values = ResolveAutoValues(
      &config, {.micro_batch = 2, .train_args = {"--per_device_train_batch_size", "16"}});
  CHECK(config["train_micro_batch_size_per_gpu"] == 2);
  CHECK(values[0].source == "zerorun --micro-batch-size");
}

TEST_CASE("train_batch_size stays unresolved while the world size is unknown", "[auto]") {
  json config = {{"train_batch_size", "auto"}, {"train_micro_batch_size_per_gpu", 2}};
  const auto values = ResolveAutoValues(&config, {.grad_accum = 1});
  CHECK_FALSE(values[0].resolved);
}

TEST_CASE("FindArg reads --k v and --k=v, the last one winning", "[auto]") {
  const std::vector<std::string> args = {"--a", "1", "--b=2", "--a=3"};
  CHECK(FindArg(args, "a") == "3");
  CHECK(FindArg(args, "b") == "2");
  CHECK_FALSE(FindArg(args, "c").has_value());
}

}  // namespace
}  // namespace zerorun::dsconfig

namespace zerorun::dsconfig {
namespace {

AutoInputs Hf(std::vector<std::string> args) {
  args.insert(args.begin(), {"--deepspeed", "ds.json"});
  return {.hidden_size = 64, .train_args = std::move(args), .world_size = 2};
}

TEST_CASE("HF Trainer's own rules: full-eval flags, warmup 0 with a ratio, ZeRO-3 keys at stage 3",
          "[auto]") {
  json config = kHfConfig;
  ResolveAutoValues(&config, Hf({"--bf16_full_eval", "--warmup_steps", "0", "--warmup_ratio", "0.1",
                                 "--max_steps", "35"}));
  CHECK(config["bf16"]["enabled"] == true);  // bf16 or bf16_full_eval, as HF.
  CHECK(config["fp16"]["enabled"] == false);
  CHECK(config["scheduler"]["params"]["warmup_num_steps"] == 4);  // ceil(0.1 x 35), not 0.
  // The batch HF multiplies: its own arguments (defaults 8 and 1), whatever the config holds.
  json written = kHfConfig;
  written["train_micro_batch_size_per_gpu"] = 2;
  ResolveAutoValues(&written, Hf({}));
  CHECK(written["train_batch_size"] == 16);
  json stage2 = kHfConfig;
  stage2["zero_optimization"]["stage"] = 2;
  const auto values = ResolveAutoValues(&stage2, Hf({}));
  CHECK(stage2["zero_optimization"]["reduce_bucket_size"] == 64 * 64);
  CHECK(stage2["zero_optimization"]["stage3_prefetch_bucket_size"] == "auto");
  CHECK_THAT(Find(values, "zero_optimization.stage3_prefetch_bucket_size").source,
             Catch::Contains("only at ZeRO stage 3"));
}

TEST_CASE("A written value HF Trainer would refuse is found, naming both values", "[auto]") {
  json config = kHfConfig;
  config["train_micro_batch_size_per_gpu"] = 4;
  config["optimizer"]["params"]["lr"] = 1e-4;
  config["bf16"]["enabled"] = false;
  const auto found = FindHfMismatches(
      config, Hf({"--per_device_train_batch_size", "2", "--learning_rate", "1e-4", "--bf16"}));
  REQUIRE(found.size() == 2);
  CHECK(found[0].key == "train_micro_batch_size_per_gpu");
  CHECK(found[0].written == 4);
  CHECK(found[0].hf == 2);
  CHECK_THAT(found[0].source, Catch::Contains("--per_device_train_batch_size 2"));
  CHECK(found[1].key == "bf16.enabled");
  CHECK(found[1].hf == true);
  // Agreeing values, "auto", or a command without --deepspeed: nothing.
  config["train_micro_batch_size_per_gpu"] = 2;
  config["bf16"]["enabled"] = true;
  CHECK(FindHfMismatches(
            config, Hf({"--per_device_train_batch_size", "2", "--learning_rate", "1e-4", "--bf16"}))
            .empty());
  CHECK(FindHfMismatches(config, {.train_args = {"--per_device_train_batch_size", "3"}}).empty());
  // --auto_find_batch_size: HF does not hold the micro batch to the argument.
  config["train_micro_batch_size_per_gpu"] = 4;
  CHECK(FindHfMismatches(config, Hf({"--per_device_train_batch_size", "2", "--bf16",
                                     "--learning_rate", "1e-4", "--auto_find_batch_size"}))
            .empty());
}

}  // namespace
}  // namespace zerorun::dsconfig
