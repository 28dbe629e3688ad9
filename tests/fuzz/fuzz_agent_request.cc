// libFuzzer harness: zerorund's validation of Launch and Signal requests as they arrive off the
// wire (protobuf bytes; the first byte picks the message).
#include <cstddef>
#include <cstdint>

#include "request_validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    zerorun::v1::SignalRequest request;
    if (request.ParseFromArray(data + 1, static_cast<int>(size - 1))) {
      (void)zerorun::worker::ValidateSignalRequest(request);
    }
  } else {
    zerorun::v1::LaunchRequest request;
    if (request.ParseFromArray(data + 1, static_cast<int>(size - 1))) {
      (void)zerorun::worker::ValidateLaunchRequest(request);
    }
  }
  return 0;
}
