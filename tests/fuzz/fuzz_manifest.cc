// libFuzzer harness: a checkpoint's manifest.json (zerorun ckpt inspect/verify, every resume) on
// any bytes: ReadManifest refuses it with a status or returns one whose shards match its world
// size; nothing throws or reads out of bounds.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "ckpt/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    char pattern[] = "/tmp/zerorun-fuzz-manifest-XXXXXX";
    return std::string(mkdtemp(pattern));
  }();
  {
    std::ofstream out(dir + "/manifest.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  absl::StatusOr<zerorun::ckpt::Manifest> m = zerorun::ckpt::ReadManifest(dir);
  if (m.ok()) {
    if (static_cast<int>(m->shards.size()) != m->world_size) __builtin_trap();
    zerorun::ckpt::ShardReader reader(*m);  // Reads nothing until asked: offsets only.
    (void)reader.units();
  }
  return 0;
}
