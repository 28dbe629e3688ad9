// libFuzzer harness: the hostfile reader on DeepSpeed's `host slots=N` grammar (and YAML when the
// text opens with `hosts:`).
#include <cstddef>
#include <cstdint>
#include <string>

#include "inputs/hostfile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)zerorun::launcher::ParseHostfile("fuzz_hostfile", text);
  return 0;
}
