// The checkpoint manifest (<save_dir>/<tag>/manifest.json) as the loader and `zerorun ckpt` read
// it, and shard checks against it. No engine: the launcher links this alone.
#ifndef ZERORUN_RUNTIME_CKPT_MANIFEST_H_
#define ZERORUN_RUNTIME_CKPT_MANIFEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace zerorun::ckpt {

inline constexpr char kFormat[] = "zerorun-checkpoint";
inline constexpr int kFormatVersion = 1;

struct ShardEntry {
  int rank = 0;
  std::string file;  // Relative to the tag directory.
  uint64_t bytes = 0;
  std::string sha256;
};

struct Manifest {
  std::string dir;  // The tag directory.
  std::string tag;
  int world_size = 0;
  int stage = 0;
  std::string dtype;
  std::string zerorun_version;
  int64_t last_step = 0;
  std::vector<ShardEntry> shards;
  nlohmann::json json;  // All of it (units, loss_scaler, client_state, config).
};

// Bytes one checkpoint of a `params`-parameter model takes on disk, as pre-flight checks for
// free space: fp32 masters + Adam m and v, 12 bytes per parameter whatever the working dtype
// (16-bit working weights are derived from the masters on load), 10% for the shards' padding, 64
// KiB for the manifest. Over the bytes SaveCheckpoint writes, within 1.3x for models of 100k
// parameters up.
uint64_t CheckpointBytesEstimate(double params);

// `dir` is a save directory (the tag its `latest` names, or `tag` when given) or a tag directory
// itself. NotFound naming what is missing; DataLoss naming the file when it is not a manifest of
// this format.
absl::StatusOr<Manifest> ReadManifest(const std::string& dir, const std::string& tag = "");

// sha256 of a whole file, as hex; NotFound naming it.
absl::StatusOr<std::string> FileSha256(const std::string& path);
std::string BytesSha256(const void* data, size_t size);
// Lowercase hex of `n` bytes (a sha256 digest).
std::string HexDigest(const unsigned char* bytes, size_t n);

// The shard exists, has its manifest size and its sha256: else DataLoss (NotFound when missing)
// naming the file and what differs.
absl::Status VerifyShard(const Manifest& manifest, const ShardEntry& shard);

}  // namespace zerorun::ckpt

#endif  // ZERORUN_RUNTIME_CKPT_MANIFEST_H_
