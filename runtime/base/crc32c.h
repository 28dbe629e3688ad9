// CRC-32C (Castagnoli), the one checksum of zerorun's own records: TFRecord framing in the
// TensorBoard writer and the per-page checks of the NVMe swap files. SSE4.2's crc32 instruction
// where the CPU has it (about 10 GB/s a core), a table otherwise; both give the same values.
#ifndef ZERORUN_RUNTIME_BASE_CRC32C_H_
#define ZERORUN_RUNTIME_BASE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace zerorun {

// CRC-32C of `size` bytes at `data` (0xE3069283 for "123456789"). Any thread.
uint32_t Crc32c(const void* data, size_t size);

// The table version, which Crc32c uses where the CPU lacks SSE4.2 (for the test that the two
// agree).
uint32_t Crc32cPortable(const void* data, size_t size);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_CRC32C_H_
