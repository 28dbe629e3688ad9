// Counter-based random numbers for initialising parameters on the shard: the value of element i
// of a tensor depends only on (seed, tensor, i), so a model is bit-identical at any world size
// and each rank fills only the slice it owns (what DeepSpeed needs zero.Init for).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_COUNTER_RNG_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_COUNTER_RNG_H_

#include <cmath>
#include <cstdint>

namespace zerorun {

// splitmix64's finaliser: a bijective 64-bit mix.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1) with 24 random bits.
inline float CounterUniform(uint64_t key) {
  return (static_cast<float>(Mix64(key) >> 40) + 0.5f) / 16777216.0f;
}

// Standard normal (Box-Muller) for element `index` of tensor `tensor` under `seed`.
inline float CounterNormal(uint64_t seed, uint64_t tensor, uint64_t index) {
  const uint64_t key = Mix64(seed ^ Mix64(tensor + 1)) ^ (index * 0xd1342543de82ef95ull);
  const float u1 = CounterUniform(key * 2), u2 = CounterUniform(key * 2 + 1);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
}

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_COUNTER_RNG_H_
