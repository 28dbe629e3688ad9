// Array conversions between fp32 and the 16-bit working dtypes (vectorized at -O3).
#include "zerorun/dtype.h"

namespace zerorun {

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return "fp32";
    case DType::kBf16:
      return "bf16";
    case DType::kFp16:
      return "fp16";
  }
  return "?";
}

void ToFloat(DType dtype, const uint16_t* __restrict in, float* __restrict out, size_t n) {
  if (dtype == DType::kBf16) {
    for (size_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(in[i]);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = Fp16ToFloat(in[i]);
  }
}

void FromFloat(DType dtype, const float* __restrict in, uint16_t* __restrict out, size_t n) {
  if (dtype == DType::kBf16) {
    for (size_t i = 0; i < n; ++i) out[i] = FloatToBf16(in[i]);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = FloatToFp16(in[i]);
  }
}

void AddFloatInto(DType dtype, const float* __restrict in, uint16_t* __restrict out, size_t n) {
  if (dtype == DType::kBf16) {
    for (size_t i = 0; i < n; ++i) out[i] = FloatToBf16(Bf16ToFloat(out[i]) + in[i]);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = FloatToFp16(Fp16ToFloat(out[i]) + in[i]);
  }
}

}  // namespace zerorun
