// libFuzzer harness: `zerorun ckpt consolidate` on any manifest and shard bytes. The input is a
// manifest, a NUL byte, then the bytes of every shard file (zero_rank_0.bin .. zero_rank_3.bin
// hold them alike). So that mutations reach past the sha256 check into the layout, the harness
// writes each listed shard's real size and sha256 (and state_elements as the shard's size / 12)
// into the manifest before reading it. ReadManifest and ConsolidateWeights refuse with a status
// or return a file whose header and data add up; nothing throws, aborts, allocates past the
// bytes on disk, or reads outside the checkpoint directory.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "ckpt/consolidate.h"
#include "ckpt/manifest.h"
#include "nlohmann/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    char pattern[] = "/tmp/zerorun-fuzz-consolidate-XXXXXX";
    const std::string made = mkdtemp(pattern);
    mkdir((made + "/tag").c_str(), 0700);
    return made + "/tag";
  }();
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string manifest_text = input.substr(0, nul);
  const std::string shard = nul == std::string::npos ? "" : input.substr(nul + 1);
  for (int r = 0; r < 4; ++r) {
    std::ofstream out(dir + "/zero_rank_" + std::to_string(r) + ".bin",
                      std::ios::binary | std::ios::trunc);
    out << shard;
  }
  nlohmann::json manifest = nlohmann::json::parse(manifest_text, nullptr, false);
  const std::string sha = zerorun::ckpt::BytesSha256(shard.data(), shard.size());
  if (manifest.is_object() && manifest.contains("shards") && manifest["shards"].is_array()) {
    for (nlohmann::json& entry : manifest["shards"]) {
      if (!entry.is_object()) continue;
      entry["sha256"] = sha;
      entry["bytes"] = shard.size();
    }
    manifest["state_elements"] = shard.size() / 12;
  }
  {
    std::ofstream out(dir + "/manifest.json", std::ios::binary | std::ios::trunc);
    out << (manifest.is_discarded() ? manifest_text : manifest.dump());
  }
  absl::StatusOr<zerorun::ckpt::Manifest> m = zerorun::ckpt::ReadManifest(dir);
  if (!m.ok()) return 0;
  for (const zerorun::ckpt::ShardEntry& s : m->shards) {
    if (s.file.find('/') != std::string::npos) __builtin_trap();  // Never outside the directory.
  }
  absl::StatusOr<zerorun::ckpt::Consolidated> out =
      zerorun::ckpt::ConsolidateWeights(*m, (size & 1) != 0);
  if (out.ok()) {
    uint64_t header = 0;
    for (int i = 0; i < 8 && i < static_cast<int>(out->file.size()); ++i) {
      header |= static_cast<uint64_t>(static_cast<unsigned char>(out->file[i])) << (8 * i);
    }
    if (8 + header + out->data_bytes != out->file.size()) __builtin_trap();
  }
  return 0;
}
