// Batch arithmetic exactly as DeepSpeed's _set_batch_related_parameters and _batch_assertion.
#include "dsconfig/batch.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace zerorun::dsconfig {
namespace {

// Python's // on integers (floor, also for negatives).
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

absl::Status Fail(const std::string& deepspeed, const std::string& fix) {
  return absl::FailedPreconditionError(absl::StrCat(deepspeed, "\n", fix));
}

}  // namespace

absl::StatusOr<BatchTriple> ResolveBatch(std::optional<int64_t> tb, std::optional<int64_t> mb,
                                         std::optional<int64_t> ga, int world_size) {
  const int64_t w = world_size;
  const std::string ranks = absl::StrCat("with ", w, " rank", w == 1 ? "" : "s");
  // DeepSpeed divides by a zero micro batch or accumulation and dies with ZeroDivisionError; its
  // own assertion for the value is the right answer, so a zero divisor is answered first. Other
  // values follow DeepSpeed's derivation and its assertion order.
  if (mb && *mb == 0) {
    return Fail(absl::StrCat("Micro batch size per gpu: ", *mb, " has to be greater than 0"),
                "Fix: set train_micro_batch_size_per_gpu to a positive integer (or remove it)");
  }
  if (ga && *ga == 0) {
    return Fail(absl::StrCat("Gradient accumulation steps: ", *ga, " has to be greater than 0"),
                "Fix: set gradient_accumulation_steps to a positive integer (or remove it)");
  }
  // Every product below fits in 63 bits: world, micro batch and accumulation are each capped at
  // 2^20 (a million) in magnitude, train_batch_size at 2^20 per rank.
  constexpr int64_t kCap = int64_t{1} << 20;
  if (w < 1 || w > kCap) {
    return absl::InvalidArgumentError(absl::StrCat("world size ", w, " is outside 1..", kCap));
  }
  for (const auto& [name, value] :
       {std::pair{"train_batch_size", tb}, std::pair{"train_micro_batch_size_per_gpu", mb},
        std::pair{"gradient_accumulation_steps", ga}}) {
    const int64_t cap = std::string(name) == "train_batch_size" ? kCap * w : kCap;
    if (value && (*value > cap || *value < -cap)) {
      return Fail(absl::StrCat(name, " ", *value, " is larger than zerorun accepts (", cap, ")"),
                  absl::StrCat("Fix: check ", name, "; that many samples per step cannot fit"));
    }
  }
  BatchTriple t;
  if (tb && mb && ga) {
    t = {*tb, *mb, *ga};
  } else if (tb && mb) {
    t = {*tb, *mb, FloorDiv(FloorDiv(*tb, *mb), w)};
  } else if (tb && ga) {
    t = {*tb, FloorDiv(FloorDiv(*tb, w), *ga), *ga};
  } else if (mb && ga) {
    t = {*mb * *ga * w, *mb, *ga};
  } else if (tb) {
    t = {*tb, FloorDiv(*tb, w), 1};
  } else if (mb) {
    t = {*mb * w, *mb, 1};
  } else {
    return Fail("Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided",
                absl::StrCat("Fix: set train_micro_batch_size_per_gpu (", ranks,
                             ", micro batch 1 gives train_batch_size ", w, ")"));
  }
  if (t.train_batch_size <= 0) {
    return Fail(absl::StrCat("Train batch size: ", t.train_batch_size, " has to be greater than 0"),
                absl::StrCat(ranks, ", train_batch_size must be a positive multiple of ", w));
  }
  if (t.micro_batch_per_gpu <= 0) {
    return Fail(absl::StrCat("Micro batch size per gpu: ", t.micro_batch_per_gpu,
                             " has to be greater than 0"),
                ga ? absl::StrCat(ranks, " and ", *ga,
                                  " accumulation steps, train_batch_size must be at least ",
                                  *ga * w, " (a multiple of ", *ga * w, ")")
                   : absl::StrCat(ranks, ", train_batch_size must be at least ", w,
                                  " (a multiple of ", w, ")"));
  }
  if (t.gradient_accumulation_steps <= 0) {
    return Fail(absl::StrCat("Gradient accumulation steps: ", t.gradient_accumulation_steps,
                             " has to be greater than 0"),
                absl::StrCat(ranks, " and micro batch ", t.micro_batch_per_gpu,
                             ", train_batch_size must be at least ", t.micro_batch_per_gpu * w,
                             " (a multiple of ", t.micro_batch_per_gpu * w, ")"));
  }
  const int64_t product = t.micro_batch_per_gpu * t.gradient_accumulation_steps * w;
  if (t.train_batch_size != product) {
    std::string fix;
    if (tb && mb && ga) {
      const int64_t per_rank = *mb * *ga;
      fix = absl::StrCat(ranks, ", micro batch ", *mb, " and ", *ga,
                         " accumulation steps, train_batch_size must be ", product);
      if (*tb % per_rank == 0) {
        absl::StrAppend(&fix, " (or run on ", *tb / per_rank, " ranks)");
      }
    } else if (tb && mb) {
      fix = absl::StrCat(ranks, " and micro batch ", *mb,
                         ", train_batch_size must be a multiple of ", *mb * w);
    } else if (tb && ga) {
      fix = absl::StrCat(ranks, " and ", *ga,
                         " accumulation steps, train_batch_size must be a "
                         "multiple of ",
                         *ga * w);
    } else {
      fix = absl::StrCat(ranks, ", train_batch_size must be a multiple of ", w);
    }
    return Fail(absl::StrCat("Check batch related parameters. train_batch_size is not equal to "
                             "micro_batch_per_gpu * gradient_acc_step * world_size ",
                             t.train_batch_size, " != ", t.micro_batch_per_gpu, " * ",
                             t.gradient_accumulation_steps, " * ", w),
                fix);
  }
  return t;
}

}  // namespace zerorun::dsconfig
