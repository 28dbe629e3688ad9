// Initial weights from a safetensors file: every rank reads the element ranges of each tensor
// it owns (by name "<unit>.<tensor>", shapes checked first on every rank), Adam's state starts at
// zero and the working weights are rebuilt as after a checkpoint load.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ckpt/checkpoint_internal.h"
#include "ckpt/safetensors.h"
#include "zerorun/checkpoint.h"

namespace zerorun {
namespace {

std::string ShapeText(const std::vector<uint64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Every tensor of the model is in the file with its shape; the file's other tensors are listed.
absl::Status CheckNames(const ckpt::SafetensorsFile& file, const Layout& layout,
                        ImportReport* report) {
  std::vector<std::string> wanted;
  for (const UnitLayout& unit : layout.units()) {
    for (const TensorLayout& t : unit.tensors) {
      const std::string name = TensorFullName(unit.name, t.name);
      wanted.push_back(name);
      auto it = file.entries().find(name);
      const std::vector<uint64_t> shape(t.shape.begin(), t.shape.end());
      if (it == file.entries().end()) {
        return absl::FailedPreconditionError(
            absl::StrCat(file.path(), " has no tensor ", name, " ", ShapeText(shape),
                         " of this model (names are <unit>.<tensor>, as `zerorun ckpt "
                         "consolidate` writes them)"));
      }
      if (it->second.shape != shape) {
        return absl::FailedPreconditionError(absl::StrCat(file.path(), ": tensor ", name, " is ",
                                                          ShapeText(it->second.shape), " there, ",
                                                          ShapeText(shape), " in this model"));
      }
    }
  }
  std::sort(wanted.begin(), wanted.end());
  for (const auto& [name, entry] : file.entries()) {
    if (!std::binary_search(wanted.begin(), wanted.end(), name)) report->unused.push_back(name);
  }
  report->tensors = wanted.size();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImportReport> ImportWeights(ZeroEngine& engine, Communicator& comm,
                                           const std::string& path) {
  ImportReport report;
  absl::StatusOr<ckpt::SafetensorsFile> file = ckpt::SafetensorsFile::Open(path);
  absl::Status checked = file.status();
  if (checked.ok()) checked = CheckNames(*file, engine.layout(), &report);
  if (absl::Status s = ckpt::Agree(comm, checked, "importing " + path); !s.ok()) return s;

  // The masters of what this rank owns from the file, Adam's m and v zero.
  if (absl::Status s = engine.Sync(); !s.ok()) return s;
  const absl::Status read =
      ckpt::FillShard(engine, [&](const ckpt::ShardPiece& piece, float* values) {
        std::fill(values, values + piece.count, 0.0f);  // m, v; the padding between tensors.
        if (piece.array != StateArray::kMaster) return absl::OkStatus();
        const UnitLayout& unit = engine.layout().units()[piece.unit];
        const uint64_t begin = engine.owned_begin(piece.unit) + piece.at, end = begin + piece.count;
        for (const TensorLayout& t : unit.tensors) {
          const uint64_t lo = std::max<uint64_t>(begin, t.offset);
          const uint64_t hi = std::min<uint64_t>(end, t.offset + t.numel);
          if (lo >= hi) continue;
          absl::Status s = file->ReadFloats(TensorFullName(unit.name, t.name), lo - t.offset,
                                            hi - t.offset, values + (lo - begin));
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      });
  if (absl::Status s = ckpt::Agree(comm, read, "reading " + path); !s.ok()) return s;
  if (absl::Status s = engine.FinishRestore(0, engine.scaler()); !s.ok()) return s;
  return report;
}

}  // namespace zerorun
