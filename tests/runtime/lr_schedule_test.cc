// DeepSpeed's schedulers, values computed by hand from lr_schedules.py's formulas (step n runs at
// last_batch_iteration n - 2: DeepSpeed's engine steps the scheduler after the optimizer).
#include "zerorun/lr_schedule.h"

#include <catch2/catch.hpp>
#include <cmath>

namespace zerorun {
namespace {

TEST_CASE("WarmupLR warms up logarithmically or linearly, then holds", "[lr]") {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kWarmupLR;
  s.warmup_min_lr = 0.1f;
  s.warmup_max_lr = 1.1f;
  s.warmup_num_steps = 10;
  CHECK(s.At(1) == Approx(0.1f));  // Iteration -1: the scheduler's initial min_lr.
  CHECK(s.At(2) == Approx(0.1f));  // log(1) = 0
  CHECK(s.At(6) == Approx(0.1 + std::log(5.0) / std::log(10.0)));
  CHECK(s.At(12) == Approx(1.1f));
  CHECK(s.At(500) == Approx(1.1f));
  s.log_warmup = false;
  CHECK(s.At(7) == Approx(0.1 + 0.5));
  // DeepSpeed warms up over max(2, warmup_num_steps) iterations.
  s.log_warmup = true;
  s.warmup_num_steps = 1;
  CHECK(s.At(2) == Approx(0.1f));
  CHECK(s.At(3) == Approx(1.1f));
}

TEST_CASE("WarmupDecayLR decays linearly to zero at total_num_steps", "[lr]") {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kWarmupDecayLR;
  s.warmup_max_lr = 1.0f;
  s.warmup_num_steps = 10;
  s.total_num_steps = 110;
  s.log_warmup = false;
  CHECK(s.At(12) == Approx(1.0f));  // i = 10: (110 - 10) / 100
  CHECK(s.At(62) == Approx(0.5f));  // i = 60: 50 / 100
  CHECK(s.At(112) == Approx(0.0f));
  CHECK(s.At(200) == Approx(0.0f));  // clamped at 0
}

TEST_CASE("WarmupCosineLR scales the base lr by a cosine after warmup", "[lr]") {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kWarmupCosineLR;
  s.base_lr = 2.0f;
  s.warmup_num_steps = 10;
  s.total_num_steps = 110;
  s.warmup_min_ratio = 0.0f;
  s.cos_min_ratio = 0.1f;
  s.log_warmup = false;
  CHECK(s.At(1) == 0.0f);  // Iteration -1: DeepSpeed's get_lr gives 0 before the first step.
  CHECK(s.At(7) == Approx(2.0 * 0.5));
  CHECK(s.At(12) == Approx(2.0 * (0.1 + 0.9 * (1 + std::cos(M_PI * 1 / 100.0)) / 2)));
  CHECK(s.At(61) == Approx(2.0 * (0.1 + 0.9 * 0.5)));  // Halfway: cos = 0.
  CHECK(s.At(111) == Approx(2.0 * 0.1));
}

TEST_CASE("No scheduler means the optimizer's lr", "[lr]") {
  LrSchedule s;
  s.base_lr = 3e-4f;
  CHECK(s.At(1) == 3e-4f);
  CHECK(s.At(1000) == 3e-4f);
}

}  // namespace
}  // namespace zerorun
