// Batch arithmetic: DeepSpeed's derivation table and worked examples (reference section 11).
#include "dsconfig/batch.h"

#include <catch2/catch.hpp>

namespace zerorun::dsconfig {
namespace {

using std::nullopt;

BatchTriple Ok(std::optional<int64_t> tb, std::optional<int64_t> mb, std::optional<int64_t> ga,
               int w) {
  absl::StatusOr<BatchTriple> t = ResolveBatch(tb, mb, ga, w);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return *t;
}

std::string Error(std::optional<int64_t> tb, std::optional<int64_t> mb, std::optional<int64_t> ga,
                  int w) {
  absl::StatusOr<BatchTriple> t = ResolveBatch(tb, mb, ga, w);
  REQUIRE(t.status().code() == absl::StatusCode::kFailedPrecondition);
  return std::string(t.status().message());
}

TEST_CASE("Batch derivation follows DeepSpeed's order with floor division", "[batch]") {
  BatchTriple t = Ok(32, 4, 8, 1);
  CHECK(t.gradient_accumulation_steps == 8);
  t = Ok(32, 4, nullopt, 4);  // GA = (32 // 4) // 4
  CHECK(t.gradient_accumulation_steps == 2);
  t = Ok(32, nullopt, 2, 4);  // MB = (32 // 4) // 2
  CHECK(t.micro_batch_per_gpu == 4);
  t = Ok(nullopt, 4, 2, 3);  // TB = 4 * 2 * 3
  CHECK(t.train_batch_size == 24);
  t = Ok(32, nullopt, nullopt, 8);  // GA = 1, MB = 32 // 8
  CHECK(t.micro_batch_per_gpu == 4);
  CHECK(t.gradient_accumulation_steps == 1);
  t = Ok(nullopt, 4, nullopt, 8);  // GA = 1, TB = 4 * 8
  CHECK(t.train_batch_size == 32);
}

TEST_CASE("Batch with neither TB nor MB gives DeepSpeed's assertion", "[batch]") {
  for (auto ga : {std::optional<int64_t>(4), std::optional<int64_t>()}) {
    CHECK_THAT(Error(nullopt, nullopt, ga, 2),
               Catch::StartsWith("Either train_batch_size or train_micro_batch_size_per_gpu "
                                 "needs to be provided\n"));
  }
}

TEST_CASE("Batch worked examples give DeepSpeed's strings verbatim plus the fix", "[batch]") {
  CHECK(Ok(32, 4, nullopt, 8).gradient_accumulation_steps == 1);
  CHECK(Error(32, 4, nullopt, 3) ==
        "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
        "gradient_acc_step * world_size 32 != 4 * 2 * 3\n"
        "with 3 ranks and micro batch 4, train_batch_size must be a multiple of 12");
  CHECK(Error(30, nullopt, nullopt, 8) ==
        "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
        "gradient_acc_step * world_size 30 != 3 * 1 * 8\n"
        "with 8 ranks, train_batch_size must be a multiple of 8");
  CHECK(Error(8, 16, nullopt, 1) ==
        "Gradient accumulation steps: 0 has to be greater than 0\n"
        "with 1 rank and micro batch 16, train_batch_size must be at least 16 (a multiple of 16)");
  CHECK(Error(4, nullopt, nullopt, 8) ==
        "Micro batch size per gpu: 0 has to be greater than 0\n"
        "with 8 ranks, train_batch_size must be at least 8 (a multiple of 8)");
  CHECK(Error(64, 4, 8, 1) ==
        "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
        "gradient_acc_step * world_size 64 != 4 * 8 * 1\n"
        "with 1 rank, micro batch 4 and 8 accumulation steps, train_batch_size must be 32 (or "
        "run on 2 ranks)");
}

TEST_CASE("Batch with 6 ranks says which train_batch_size values work", "[batch]") {
  CHECK_THAT(Error(32, 4, nullopt, 6),
             Catch::EndsWith("with 6 ranks and micro batch 4, train_batch_size must be a "
                             "multiple of 24"));
  CHECK_THAT(Error(30, nullopt, 2, 4),
             Catch::EndsWith("with 4 ranks and 2 accumulation steps, train_batch_size must be a "
                             "multiple of 8"));
}

TEST_CASE("Batch values that are not positive give the first three assertions", "[batch]") {
  CHECK_THAT(Error(0, 4, 1, 2), Catch::StartsWith("Train batch size: 0 has to be greater than 0"));
  CHECK_THAT(Error(nullopt, -1, 1, 2),
             Catch::StartsWith("Train batch size: -2 has to be greater than 0"));
  CHECK_THAT(Error(8, 0, 1, 2),
             Catch::StartsWith("Micro batch size per gpu: 0 has to be greater than 0"));
  CHECK_THAT(Error(8, 4, 0, 2),
             Catch::StartsWith("Gradient accumulation steps: 0 has to be greater than 0"));
}

}  // namespace
}  // namespace zerorun::dsconfig
