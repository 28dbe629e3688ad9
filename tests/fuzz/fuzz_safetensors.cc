// libFuzzer harness: the safetensors reader (zerorun ckpt import, --init-from) on any bytes as a
// file: Open either refuses it or every tensor it lists reads back whole, within the file.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("safetensors", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  absl::StatusOr<zerorun::ckpt::SafetensorsFile> file = zerorun::ckpt::SafetensorsFile::Open(path);
  if (file.ok()) {
    for (const auto& [name, entry] : file->entries()) {
      if (entry.numel * 2 > size) __builtin_trap();  // A tensor larger than the file was accepted.
      std::vector<float> values(entry.numel);
      if (!file->ReadFloats(name, 0, entry.numel, values.data()).ok()) __builtin_trap();
    }
  }
  close(fd);
  return 0;
}
