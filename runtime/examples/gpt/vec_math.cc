// GELU, its derivative and shifted exp: 8 lanes through libmvec's _ZGVdN8v_{erff,expf} (the
// AVX2 variants GCC itself calls under -ffast-math), chosen at run time; scalar libm otherwise.
#include "vec_math.h"

#include <immintrin.h>

#include <cmath>

extern "C" {
__m256 _ZGVdN8v_erff(__m256 x);
__m256 _ZGVdN8v_expf(__m256 x);
}

namespace zerorun::gpt {
namespace {

constexpr float kInvSqrt2 = static_cast<float>(M_SQRT1_2);
constexpr float kInvSqrt2Pi = static_cast<float>(0.5 * M_2_SQRTPI * M_SQRT1_2);

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// The scalar forms: the whole job without AVX2, the tails of the vector loops with it.
void GeluScalar(const float* x, float* y, float* dydx, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float v = x[i];  // x may alias dydx: read it first.
    const float cdf = 0.5f * (1.0f + std::erf(v * kInvSqrt2));
    y[i] = v * cdf;
    if (dydx != nullptr) dydx[i] = cdf + v * std::exp(-0.5f * v * v) * kInvSqrt2Pi;
  }
}

void ExpScalar(float* x, size_t n, float shift) {
  for (size_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
}

__attribute__((target("avx2,fma"))) void GeluAvx2(const float* x, float* y, float* dydx, size_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 inv_sqrt2 = _mm256_set1_ps(kInvSqrt2), minus_half = _mm256_set1_ps(-0.5f);
  const __m256 inv_sqrt2pi = _mm256_set1_ps(kInvSqrt2Pi);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 cdf =
        _mm256_mul_ps(half, _mm256_add_ps(one, _ZGVdN8v_erff(_mm256_mul_ps(v, inv_sqrt2))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v, cdf));
    if (dydx != nullptr) {
      const __m256 pdf =
          _mm256_mul_ps(inv_sqrt2pi, _ZGVdN8v_expf(_mm256_mul_ps(minus_half, _mm256_mul_ps(v, v))));
      _mm256_storeu_ps(dydx + i, _mm256_add_ps(cdf, _mm256_mul_ps(v, pdf)));
    }
  }
  GeluScalar(x + i, y + i, dydx != nullptr ? dydx + i : nullptr, n - i);
}

__attribute__((target("avx2,fma"))) void ExpAvx2(float* x, size_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(x + i, _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
  }
  ExpScalar(x + i, n - i, shift);
}

}  // namespace

void Gelu(const float* x, float* y, size_t n) {
  HasAvx2() ? GeluAvx2(x, y, nullptr, n) : GeluScalar(x, y, nullptr, n);
}

void GeluWithGrad(const float* x, float* y, float* dydx, size_t n) {
  HasAvx2() ? GeluAvx2(x, y, dydx, n) : GeluScalar(x, y, dydx, n);
}

void ExpShifted(float* x, size_t n, float shift) {
  HasAvx2() ? ExpAvx2(x, n, shift) : ExpScalar(x, n, shift);
}

}  // namespace zerorun::gpt
