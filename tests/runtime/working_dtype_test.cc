// The engine's working-dtype views: UnitGuard::weights() (checked on every engine run by the
// harness: it widens to tensor()) and WorkingGrads(), which a bf16 or fp16 model writes its
// gradients into, against the same gradients written as fp32 through Grads(): bit-identical at
// stages 0-3, ranks as threads over a real Gloo communicator.
#include <catch2/catch.hpp>
#include <string>

#include "engine_harness.h"

namespace zerorun {
namespace {

using engine_harness::Drive;
using engine_harness::kUnits;
using engine_harness::Run;
using engine_harness::RunEngine;

TEST_CASE("Gradients written in the working dtype train exactly as the same values in fp32",
          "[zero][multirank]") {
  // WorkingGrads() is what a bf16 model writes; Grads() what an fp32 one does. With gradients
  // exact in the working dtype both must give the same bits, at every stage.
  for (DType dtype : {DType::kBf16, DType::kFp16, DType::kFp32}) {
    for (int stage = 0; stage <= 3; ++stage) {
      INFO(DTypeName(dtype) << " stage " << stage);
      ZeroOptions options;
      options.stage = stage;
      options.dtype = dtype;
      options.gradient_accumulation_steps = 2;
      options.grad_slots = 2;
      options.overlap_comm = stage >= 2;
      Drive fp32_grads;
      fp32_grads.round_grads = true;
      Drive working = fp32_grads;
      working.working_grads = true;
      const Run a = RunEngine(2, options, 3, fp32_grads);
      const Run b = RunEngine(2, options, 3, working);
      REQUIRE(a.params == b.params);
      REQUIRE(a.norms == b.norms);
    }
  }
}

TEST_CASE("Grads() and WorkingGrads() of one unit in one micro-step is an error", "[zero]") {
  InMemoryKvStore store;
  auto comm = CreateGlooCommunicator(store, 0, 1, {});
  REQUIRE(comm.ok());
  ZeroOptions options;
  options.stage = 2;
  options.dtype = DType::kBf16;
  auto engine = ZeroEngine::Create(kUnits, options, comm->get());
  REQUIRE(engine.ok());
  REQUIRE((*engine)->Grads(1).ok());
  const absl::StatusOr<BufferView> mixed = (*engine)->WorkingGrads(1);
  CHECK(mixed.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(mixed.status().message()), Catch::Contains("block"));
  REQUIRE((*engine)->GradsReady(1).ok());
  const absl::StatusOr<BufferView> next = (*engine)->WorkingGrads(1);  // A new micro-step.
  REQUIRE(next.ok());
  CHECK(next->dtype == DType::kBf16);
  CHECK(next->count == (*engine)->layout().units()[1].padded);
  REQUIRE((*engine)->GradsReady(1).ok());
}

}  // namespace
}  // namespace zerorun
