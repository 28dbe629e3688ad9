// Working dtypes of the ZeRO runtime and their conversions to and from fp32 (bit-exact,
// round-to-nearest-even, NaN kept NaN). 16-bit values are stored as uint16_t bit patterns.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_DTYPE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace zerorun {

enum class DType { kFp32, kBf16, kFp16 };

inline size_t SizeOf(DType dtype) { return dtype == DType::kFp32 ? 4 : 2; }
const char* DTypeName(DType dtype);  // "fp32", "bf16", "fp16"

inline uint32_t FloatBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}
inline float BitsFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// bfloat16: the top 16 bits of an fp32, rounded to nearest even; a NaN stays a (quiet) NaN.
inline uint16_t FloatToBf16(float f) {
  uint32_t bits = FloatBits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
inline float Bf16ToFloat(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }

// IEEE binary16 (GCC/Clang _Float16: correctly rounded, overflow to inf, subnormals kept).
inline uint16_t FloatToFp16(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, sizeof(bits));
  return bits;
}
inline float Fp16ToFloat(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, sizeof(h));
  return static_cast<float>(h);
}

// Array conversions for 16-bit dtypes (kBf16 or kFp16; kFp32 is not a 16-bit dtype).
void ToFloat(DType dtype, const uint16_t* in, float* out, size_t n);
void FromFloat(DType dtype, const float* in, uint16_t* out, size_t n);
// out[i] = round(float(out[i]) + in[i]): accumulation into a 16-bit buffer, in fp32.
void AddFloatInto(DType dtype, const float* in, uint16_t* out, size_t n);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_DTYPE_H_
