// libFuzzer harness: DeepSpeed's batch arithmetic on any three optional int64 values and any
// world size (the bytes: a presence mask, three int64, an int32 world size).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "dsconfig/batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + 3 * 8 + 4) return 0;
  std::optional<int64_t> values[3];
  for (int i = 0; i < 3; ++i) {
    int64_t v = 0;
    std::memcpy(&v, data + 1 + 8 * i, 8);
    if (data[0] & (1 << i)) values[i] = v;
  }
  int32_t world = 0;
  std::memcpy(&world, data + 25, 4);
  absl::StatusOr<zerorun::dsconfig::BatchTriple> t =
      zerorun::dsconfig::ResolveBatch(values[0], values[1], values[2], world);
  // What it returns is consistent: a product that overflowed would not be.
  if (t.ok() && t->train_batch_size !=
                    t->micro_batch_per_gpu * t->gradient_accumulation_steps * int64_t{world}) {
    __builtin_trap();
  }
  return 0;
}
