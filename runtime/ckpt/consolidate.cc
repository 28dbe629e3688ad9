// Consolidation of a checkpoint's shards into one safetensors file (see consolidate.h).
#include "ckpt/consolidate.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "ckpt/safetensors.h"
#include "zerorun/dtype.h"
#include "zerorun/partition.h"

namespace zerorun::ckpt {

absl::StatusOr<Consolidated> ConsolidateWeights(const Manifest& m, bool bf16) {
  if (m.json.value("kind", "") == "weights") {
    return absl::FailedPreconditionError(
        absl::StrCat(m.dir, " holds imported initial weights: its ", m.shards.front().file,
                     " is already one safetensors file"));
  }
  for (const ShardEntry& shard : m.shards) {
    if (absl::Status s = VerifyShard(m, shard); !s.ok()) return s;
  }
  ShardReader reader(m);
  nlohmann::json header = nlohmann::json::object();
  // "format": "pt", as torch's save_file writes it: transformers' from_pretrained refuses others.
  header["__metadata__"] = {
      {"format", "pt"},
      {"zerorun", bf16 ? "fp32 masters rounded to bf16 (nearest even)" : "fp32 masters"},
      {"tag", m.tag},
      {"step", std::to_string(m.last_step)},
      {"world_size", std::to_string(m.world_size)},
      {"stage", std::to_string(m.stage)}};
  std::string data;
  Consolidated out;
  // One tensor's values after the others, in the file's dtype.
  auto append = [&](const std::string& name, const nlohmann::json& shape,
                    const std::vector<float>& values) {
    if (header.contains(name)) {
      return absl::DataLossError(
          absl::StrCat(m.dir, "/manifest.json names tensor ", name, " twice (corrupt)"));
    }
    const size_t bytes = values.size() * (bf16 ? 2 : 4);
    header[name] = {{"dtype", bf16 ? "BF16" : "F32"},
                    {"shape", shape},
                    {"data_offsets", {data.size(), data.size() + bytes}}};
    if (bf16) {
      for (float v : values) {
        const uint16_t h = FloatToBf16(v);  // Little-endian, as safetensors stores it.
        data.push_back(static_cast<char>(h & 0xff));
        data.push_back(static_cast<char>(h >> 8));
      }
    } else {
      data.append(reinterpret_cast<const char*>(values.data()), bytes);
    }
    ++out.tensors;
    return absl::OkStatus();
  };
  const nlohmann::json units = m.json.value("units", nlohmann::json::array());
  for (size_t u = 0; u < units.size(); ++u) {
    for (const nlohmann::json& t : units[u].value("tensors", nlohmann::json::array())) {
      const uint64_t offset = t.value("offset", uint64_t{0}), numel = t.value("numel", uint64_t{0});
      std::vector<float> values(numel);
      if (absl::Status s = reader.Read(u, offset, offset + numel, 0, values.data()); !s.ok()) {
        return s;
      }
      const std::string name =
          TensorFullName(units[u].value("name", ""), t.value("name", std::string()));
      if (absl::Status s = append(name, t.value("shape", nlohmann::json::array()), values);
          !s.ok()) {
        return s;
      }
    }
  }
  if (m.frozen.has_value()) {  // The model's frozen tensors, as the save had them.
    if (absl::Status s = VerifyShard(m, *m.frozen); !s.ok()) return s;
    absl::StatusOr<SafetensorsFile> frozen =
        SafetensorsFile::Open(absl::StrCat(m.dir, "/", m.frozen->file));
    if (!frozen.ok()) return frozen.status();
    for (const auto& [name, entry] : frozen->entries()) {
      std::vector<float> values(entry.numel);
      if (absl::Status s = frozen->ReadFloats(name, 0, entry.numel, values.data()); !s.ok()) {
        return s;
      }
      if (absl::Status s = append(name, entry.shape, values); !s.ok()) return s;
    }
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // Data starts 8-byte aligned.
  out.file.assign(8, '\0');
  for (int i = 0; i < 8; ++i) out.file[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  out.file += text;
  out.file += data;
  out.data_bytes = data.size();
  return out;
}

}  // namespace zerorun::ckpt
