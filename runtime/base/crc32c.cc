// CRC-32C: SSE4.2 where present (chosen once, at first use), slicing-by-8 tables otherwise.
#include "base/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace zerorun {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78u;  // Castagnoli, reflected.

// tables[0] is the byte-wise table; tables[j][b] advances b's CRC over j more zero bytes.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

const Tables& SliceTables() {
  static const Tables* tables = [] {
    auto* t = new Tables();
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
      (*t)[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (size_t j = 1; j < 8; ++j) {
        (*t)[j][i] = ((*t)[j - 1][i] >> 8) ^ (*t)[0][(*t)[j - 1][i] & 0xff];
      }
    }
    return t;
  }();
  return *tables;
}

uint32_t Portable(uint32_t crc, const unsigned char* p, size_t n) {
  const Tables& t = SliceTables();
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
          t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Hardware(uint32_t crc, const unsigned char* p,
                                                    size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
#endif

using Kernel = uint32_t (*)(uint32_t, const unsigned char*, size_t);

Kernel Choose() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2")) return Hardware;
#endif
  return Portable;
}

}  // namespace

uint32_t Crc32c(const void* data, size_t size) {
  static const Kernel kernel = Choose();
  return kernel(0xffffffffu, static_cast<const unsigned char*>(data), size) ^ 0xffffffffu;
}

uint32_t Crc32cPortable(const void* data, size_t size) {
  return Portable(0xffffffffu, static_cast<const unsigned char*>(data), size) ^ 0xffffffffu;
}

}  // namespace zerorun
