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

// IEEE binary16: correctly rounded (to nearest even), overflow to inf, subnormals kept. With the
// compiler's _Float16 where it has one (GCC; F16C instructions), else by bits (clang before 15
// on x86, e.g. the fuzz build): the same results.
#if defined(__FLT16_MANT_DIG__)
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
#else
inline uint16_t FloatToFp16(float f) {
  uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN, inf.
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // Rounds past 65504: inf.
  if (x < 0x38800000u) {  // Below 2^-14: a subnormal half, m x 2^-24 with m rounded (to even).
    const float scaled = BitsFloat(x) * 16777216.0f;
    const uint32_t m = static_cast<uint32_t>(scaled);
    const float rest = scaled - static_cast<float>(m);
    const uint32_t up = rest > 0.5f || (rest == 0.5f && (m & 1u)) ? 1u : 0u;
    return sign | static_cast<uint16_t>(m + up);
  }
  x -= 0x38000000u;  // Rebias the exponent (127 -> 15), then round 23 -> 10 mantissa bits.
  x += 0xfffu + ((x >> 13) & 1u);
  return sign | static_cast<uint16_t>(x >> 13);
}
inline float Fp16ToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu, mant = bits & 0x3ffu;
  if (exp == 0) {  // Zero or subnormal: mant x 2^-24, exact in fp32.
    return BitsFloat(FloatBits(static_cast<float>(mant) / 16777216.0f) | sign);
  }
  if (exp == 31) return BitsFloat(sign | 0x7f800000u | (mant << 13));
  return BitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}
#endif

// Array conversions for 16-bit dtypes (kBf16 or kFp16; kFp32 is not a 16-bit dtype).
void ToFloat(DType dtype, const uint16_t* in, float* out, size_t n);
void FromFloat(DType dtype, const float* in, uint16_t* out, size_t n);
// out[i] = round(float(out[i]) + in[i]): accumulation into a 16-bit buffer, in fp32.
void AddFloatInto(DType dtype, const float* in, uint16_t* out, size_t n);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_DTYPE_H_
