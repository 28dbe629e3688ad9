// libFuzzer harness: the YAML hostfile form (a .yaml path always takes the YAML reader).
#include <cstddef>
#include <cstdint>
#include <string>

#include "inputs/hostfile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)zerorun::launcher::ParseHostfile("fuzz.yaml", text);
  return 0;
}
