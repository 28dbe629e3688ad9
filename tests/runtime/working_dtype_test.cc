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

TEST_CASE("16-bit weights bound as they are (widen off) train the same with no fp32 views",
          "[zero][multirank]") {
  // A bf16 or fp16 model binds weights() and writes WorkingGrads(): without the widening no
  // fp32 view is made (tensor() is nullptr), stage 3 gathers into 16-bit views only, and the
  // training is the same bits as with it.
  for (DType dtype : {DType::kBf16, DType::kFp16}) {
    for (int stage = 0; stage <= 3; ++stage) {
      for (bool overlap : {false, true}) {
        INFO(DTypeName(dtype) << " stage " << stage << " overlap " << overlap);
        ZeroOptions options = stage < 3 ? ZeroOptions{} : engine_harness::Stage3(overlap);
        options.stage = stage;
        options.dtype = dtype;
        options.overlap_comm = overlap;
        options.gradient_accumulation_steps = 2;
        Drive drive;
        drive.round_grads = true;
        drive.working_grads = true;
        const Run widened = RunEngine(2, options, 3, drive);
        options.widen = false;
        const Run bound = RunEngine(2, options, 3, drive);
        REQUIRE(bound.params == widened.params);
        REQUIRE(bound.norms == widened.norms);
        CHECK(widened.fp32_views);
        CHECK_FALSE(bound.fp32_views);
        CHECK(bound.working_view_matches);
        CHECK(bound.working_is_rounded_master);
        // Views: none for resident units; stage 3 gathers into 16-bit ones (2 bytes an element
        // instead of 6).
        if (stage < 3) CHECK(bound.memory.live == 0);
        if (stage == 3) CHECK(bound.memory.live * 3 == widened.memory.live);
        CHECK(bound.memory.allocated == bound.memory.total());
      }
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
