// The checkpoint manifest (<save_dir>/<tag>/manifest.json) as the loader and `zerorun ckpt` read
// it, and shard checks against it. No engine: the launcher links this alone.
#ifndef ZERORUN_RUNTIME_CKPT_MANIFEST_H_
#define ZERORUN_RUNTIME_CKPT_MANIFEST_H_

#include <cstdint>
#include <optional>
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

// The file of a checkpoint's frozen tensors (SaveOptions::frozen), when it has one.
inline constexpr char kFrozenFile[] = "frozen.safetensors";

struct Manifest {
  std::string dir;  // The tag directory.
  std::string tag;
  int world_size = 0;
  int stage = 0;
  std::string dtype;
  std::string zerorun_version;
  int64_t last_step = 0;
  std::vector<ShardEntry> shards;
  std::optional<ShardEntry> frozen;  // kFrozenFile (rank -1), when the save had frozen tensors.
  nlohmann::json json;               // All of it (units, loss_scaler, client_state, config).
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

// Reads parts of a checkpoint's arrays by unit element ranges, from whichever shards hold them
// (pread: only the bytes asked for). Not thread-safe.
class ShardReader {
 public:
  explicit ShardReader(const Manifest& manifest);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  size_t units() const { return offsets_.size(); }
  // Elements [begin, end) of unit `unit`'s flat buffer, array 0 (fp32 masters), 1 (m) or 2 (v),
  // into out[0, end - begin). Past the unit's padding reads as 0. NotFound / DataLoss naming the
  // shard file.
  absl::Status Read(size_t unit, uint64_t begin, uint64_t end, int array, float* out);

 private:
  const Manifest& m_;
  std::vector<uint64_t> offsets_;  // Each unit's state offset in the shards.
  std::vector<int> fds_;
  uint64_t elements_ = 0;
};

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
