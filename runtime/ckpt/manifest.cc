// Manifest reading and shard verification (sha256 through OpenSSL's EVP).
#include "ckpt/manifest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"

namespace zerorun::ckpt {
namespace {

bool IsFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

uint64_t CheckpointBytesEstimate(double params) {
  return static_cast<uint64_t>(12.0 * params * 1.1) + 64 * 1024;
}

std::string HexDigest(const unsigned char* bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 15]);
  }
  return out;
}

std::string BytesSha256(const void* data, size_t size) {
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_Digest(data, size, digest, &length, EVP_sha256(), nullptr);
  return HexDigest(digest, length);
}

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  return HexDigest(digest, length);
}

namespace {

// What is wrong with the types of the fields a reader of `manifest` uses ("" when nothing):
// a corrupt or hand-edited manifest is refused by name instead of throwing inside nlohmann.
std::string BadField(const nlohmann::json& manifest) {
  using Check = bool (nlohmann::json::*)() const noexcept;
  const std::pair<const char*, Check> top[] = {
      {"format_version", &nlohmann::json::is_number_unsigned},
      {"tag", &nlohmann::json::is_string},
      {"world_size", &nlohmann::json::is_number_unsigned},
      {"stage", &nlohmann::json::is_number_unsigned},
      {"dtype", &nlohmann::json::is_string},
      {"zerorun_version", &nlohmann::json::is_string},
      {"last_step", &nlohmann::json::is_number_integer},
      {"state_elements", &nlohmann::json::is_number_unsigned},
      {"kind", &nlohmann::json::is_string},
      {"source", &nlohmann::json::is_string},
      {"tensors", &nlohmann::json::is_number_unsigned},
      {"shards", &nlohmann::json::is_array},
      {"units", &nlohmann::json::is_array},
      {"loss_scaler", &nlohmann::json::is_array}};
  auto bad = [](const nlohmann::json& j, const char* key, Check check) {
    return j.contains(key) && !(j[key].*check)();
  };
  for (const auto& [key, check] : top) {
    if (bad(manifest, key, check)) return absl::StrCat(key, " has the wrong type");
  }
  for (const nlohmann::json& v : manifest.value("loss_scaler", nlohmann::json::array())) {
    if (!v.is_number()) return "loss_scaler holds a non-number";
  }
  if (manifest.value("world_size", uint64_t{0}) > (uint64_t{1} << 24) ||
      manifest.value("stage", uint64_t{0}) > 3) {
    return "world_size or stage is out of range";
  }
  for (const nlohmann::json& shard : manifest.value("shards", nlohmann::json::array())) {
    if (!shard.is_object() || bad(shard, "rank", &nlohmann::json::is_number_integer) ||
        bad(shard, "file", &nlohmann::json::is_string) ||
        bad(shard, "bytes", &nlohmann::json::is_number_unsigned) ||
        bad(shard, "sha256", &nlohmann::json::is_string)) {
      return "a shard entry has the wrong type";
    }
  }
  for (const nlohmann::json& unit : manifest.value("units", nlohmann::json::array())) {
    if (!unit.is_object() || bad(unit, "name", &nlohmann::json::is_string) ||
        bad(unit, "numel", &nlohmann::json::is_number_unsigned) ||
        bad(unit, "padded", &nlohmann::json::is_number_unsigned) ||
        bad(unit, "shard", &nlohmann::json::is_number_unsigned) ||
        bad(unit, "tensors", &nlohmann::json::is_array)) {
      return "a unit entry has the wrong type";
    }
    for (const nlohmann::json& t : unit.value("tensors", nlohmann::json::array())) {
      if (!t.is_object() || bad(t, "name", &nlohmann::json::is_string) ||
          bad(t, "shape", &nlohmann::json::is_array) ||
          bad(t, "offset", &nlohmann::json::is_number_unsigned) ||
          bad(t, "numel", &nlohmann::json::is_number_unsigned)) {
        return "a tensor entry has the wrong type";
      }
    }
  }
  return "";
}

// A name the manifest gives a file or a tag: a plain name in its directory, never a path.
bool PlainName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

// What is wrong with the layout a reader would follow ("" when nothing): shards in rank order,
// each of the state's size, units adding up to that state, tensors inside their units and of
// their shapes' sizes, every count small enough that no arithmetic on it overflows. With the
// shards' sizes checked against the files (VerifyShard), nothing the layout names lies beyond
// the bytes on disk, so no reader allocates or reads what is not there.
std::string BadLayout(const Manifest& m) {
  constexpr uint64_t kMax = uint64_t{1} << 44;  // 16 Ti elements: past any model, far from 2^64.
  for (size_t r = 0; r < m.shards.size(); ++r) {
    const ShardEntry& shard = m.shards[r];
    if (shard.rank != static_cast<int>(r)) {
      return absl::StrCat("shard entry ", r, " is rank ", shard.rank, "'s (not in rank order)");
    }
    if (!PlainName(shard.file)) {
      return absl::StrCat("rank ", r, "'s shard file '", shard.file.substr(0, 64),
                          "' is not a plain file name in the checkpoint's directory");
    }
  }
  if (m.json.value("kind", "") == "weights") return "";  // One imported safetensors file.
  const uint64_t elements = m.json.value("state_elements", uint64_t{0});
  if (elements > kMax) return absl::StrCat("state_elements ", elements, " is out of range");
  for (const ShardEntry& shard : m.shards) {
    if (shard.bytes != elements * 12) {
      return absl::StrCat(shard.file, " is ", shard.bytes, " bytes in the manifest, its state ",
                          elements, " elements x 12");
    }
  }
  uint64_t sum = 0;
  for (const nlohmann::json& unit : m.json.value("units", nlohmann::json::array())) {
    const std::string name = unit.value("name", "");
    const uint64_t numel = unit.value("numel", uint64_t{0});
    const uint64_t padded = unit.value("padded", uint64_t{0});
    const uint64_t shard = unit.value("shard", uint64_t{0});
    const uint64_t world = static_cast<uint64_t>(m.world_size);
    if (numel > kMax || padded > kMax || shard > kMax || numel > padded ||
        (m.stage > 0 && (padded + world - 1) / world > shard)) {
      return absl::StrCat("unit ", name.substr(0, 64), ": numel ", numel, ", padded ", padded,
                          ", shard ", shard, " do not fit ", m.world_size, " rank(s)");
    }
    sum += m.stage == 0 ? padded : shard;
    if (sum > kMax) return "the units hold more state elements than any checkpoint";
    for (const nlohmann::json& t : unit.value("tensors", nlohmann::json::array())) {
      const uint64_t offset = t.value("offset", uint64_t{0}), count = t.value("numel", uint64_t{0});
      uint64_t product = 1;
      for (const nlohmann::json& d : t.value("shape", nlohmann::json::array())) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > kMax) return "a tensor shape is bad";
        product = d.get<uint64_t>() == 0 ? 0 : std::min(kMax + 1, product * d.get<uint64_t>());
      }
      if (offset > kMax || count > kMax || offset + count > padded || product != count) {
        return absl::StrCat("tensor ", t.value("name", "").substr(0, 64), " of unit ",
                            name.substr(0, 64), " (offset ", offset, ", numel ", count,
                            ") lies outside its unit or differs from its shape");
      }
    }
  }
  if (sum != elements) {
    return absl::StrCat("the units hold ", sum, " state elements, state_elements says ", elements);
  }
  return "";
}

}  // namespace

absl::StatusOr<Manifest> ReadManifest(const std::string& dir, const std::string& tag) {
  std::string tag_dir = dir;
  if (!IsFile(dir + "/manifest.json")) {
    std::string name = tag;
    if (name.empty()) {
      std::ifstream latest(dir + "/latest");
      if (!(latest >> name)) {
        return absl::NotFoundError(absl::StrCat("no checkpoint in ", dir, ": neither ", dir,
                                                "/manifest.json nor ", dir,
                                                "/latest. Fix: save one first, or name a tag"));
      }
    }
    if (!PlainName(name)) {
      return absl::DataLossError(absl::StrCat(dir, "/latest names '", name.substr(0, 64),
                                              "', not a tag directory in ", dir));
    }
    tag_dir = absl::StrCat(dir, "/", name);
  }
  const std::string path = tag_dir + "/manifest.json";
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no checkpoint manifest ", path));
  Manifest m;
  m.dir = tag_dir;
  m.json = nlohmann::json::parse(in, nullptr, false);
  if (m.json.is_discarded() || !m.json.is_object() || !m.json.contains("format") ||
      m.json["format"] != kFormat) {
    return absl::DataLossError(absl::StrCat(path, " is not a zerorun checkpoint manifest"));
  }
  if (const std::string bad = BadField(m.json); !bad.empty()) {
    return absl::DataLossError(absl::StrCat(path, ": ", bad, " (corrupt manifest)"));
  }
  if (m.json.value("format_version", 0) != kFormatVersion) {
    return absl::DataLossError(absl::StrCat(path, ": format_version ",
                                            m.json.value("format_version", 0),
                                            ", this zerorun "
                                            "reads ",
                                            kFormatVersion));
  }
  m.tag = m.json.value("tag", "");
  m.world_size = m.json.value("world_size", 0);
  m.stage = m.json.value("stage", -1);
  m.dtype = m.json.value("dtype", "");
  m.zerorun_version = m.json.value("zerorun_version", "");
  m.last_step = m.json.value("last_step", int64_t{0});
  const nlohmann::json shards = m.json.value("shards", nlohmann::json::array());
  for (const nlohmann::json& s : shards) {
    if (!s.is_object()) continue;
    m.shards.push_back({s.value("rank", -1), s.value("file", ""), s.value("bytes", uint64_t{0}),
                        s.value("sha256", "")});
  }
  if (const nlohmann::json f = m.json.value("frozen", nlohmann::json()); f.is_object()) {
    m.frozen = ShardEntry{-1, kFrozenFile, f.value("bytes", uint64_t{0}), f.value("sha256", "")};
  }
  if (m.world_size < 1 || static_cast<int>(m.shards.size()) != m.world_size) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", m.shards.size(), " shard entries for world size ", m.world_size));
  }
  if (const std::string bad = BadLayout(m); !bad.empty()) {
    return absl::DataLossError(absl::StrCat(path, ": ", bad, " (corrupt manifest)"));
  }
  return m;
}

ShardReader::ShardReader(const Manifest& m)
    : m_(m), fds_(m.shards.size(), -1), elements_(m.json.value("state_elements", uint64_t{0})) {
  uint64_t offset = 0;
  for (const nlohmann::json& unit : m.json.value("units", nlohmann::json::array())) {
    offsets_.push_back(offset);
    offset += m.stage == 0 ? unit.value("padded", uint64_t{0}) : unit.value("shard", uint64_t{0});
  }
}

ShardReader::~ShardReader() {
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
}

absl::Status ShardReader::Read(size_t unit, uint64_t begin, uint64_t end, int array, float* out) {
  const nlohmann::json& u = m_.json["units"][unit];
  const uint64_t shard = u.value("shard", uint64_t{0}), padded = u.value("padded", uint64_t{0});
  const bool full = m_.stage == 0;  // Stage 0: every rank holds whole units (shard 0 is read).
  const uint64_t owned = full ? padded : shard;
  std::fill(out, out + (end - begin), 0.0f);
  end = std::min(end, padded);
  for (size_t r = 0; r < (full ? 1 : fds_.size()) && begin < end; ++r) {
    const uint64_t r_begin = full ? 0 : r * shard;
    const uint64_t lo = std::max(begin, r_begin), hi = std::min(end, r_begin + owned);
    if (lo >= hi) continue;
    const std::string path = absl::StrCat(m_.dir, "/", m_.shards[r].file);
    if (fds_[r] < 0) fds_[r] = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fds_[r] < 0) {
      return absl::NotFoundError(
          absl::StrCat(path, " (rank ", r, "'s shard) cannot be read: ", strerror(errno)));
    }
    const uint64_t at = (array * elements_ + offsets_[unit] + (lo - r_begin)) * 4;
    const size_t bytes = (hi - lo) * 4;
    if (pread(fds_[r], out + (lo - begin), bytes, static_cast<off_t>(at)) !=
        static_cast<ssize_t>(bytes)) {
      return absl::DataLossError(
          absl::StrCat(path, ": short read of ", bytes, " bytes at offset ", at, " (truncated?)"));
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyShard(const Manifest& manifest, const ShardEntry& shard) {
  const std::string path = absl::StrCat(manifest.dir, "/", shard.file);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(
        path,
        shard.rank < 0 ? " (the frozen tensors)" : absl::StrCat(" (rank ", shard.rank, "'s shard)"),
        " is missing"));
  }
  if (static_cast<uint64_t>(st.st_size) != shard.bytes) {
    return absl::DataLossError(absl::StrCat(path, " is ", st.st_size, " bytes, its manifest says ",
                                            shard.bytes, " (truncated?)"));
  }
  absl::StatusOr<std::string> sha = FileSha256(path);
  if (!sha.ok()) return sha.status();
  if (*sha != shard.sha256) {
    return absl::DataLossError(absl::StrCat(path, " does not match its sha256 in ", manifest.dir,
                                            "/manifest.json (", sha->substr(0, 16), "... vs ",
                                            shard.sha256.substr(0, 16), "...): corrupt"));
  }
  return absl::OkStatus();
}

}  // namespace zerorun::ckpt
