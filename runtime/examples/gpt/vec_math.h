// Element-wise transcendental kernels of the example GPT, vectorized with glibc's libmvec
// (AVX2 erff/expf, <= 4 ulp) when the CPU has AVX2 + FMA, scalar libm otherwise.
#ifndef ZERORUN_RUNTIME_EXAMPLES_GPT_VEC_MATH_H_
#define ZERORUN_RUNTIME_EXAMPLES_GPT_VEC_MATH_H_

#include <cstddef>

namespace zerorun::gpt {

// y = x * Phi(x) (exact GELU: Phi is the normal CDF, via erf).
void Gelu(const float* x, float* y, size_t n);
// y = GELU(x) and dydx = Phi(x) + x * phi(x), in one pass (one erf and one exp per element).
// dydx may be x itself (in place); y must not alias either.
void GeluWithGrad(const float* x, float* y, float* dydx, size_t n);
// x = exp(x - shift), in place.
void ExpShifted(float* x, size_t n, float shift);

}  // namespace zerorun::gpt

#endif  // ZERORUN_RUNTIME_EXAMPLES_GPT_VEC_MATH_H_
