// Weights from a safetensors file: every rank reads the element ranges of each tensor it owns (by
// name "<unit>.<tensor>", shapes checked first on every rank), Adam's state from the file where it
// is there (a DeepSpeed checkpoint imported) or zero, and the working weights are rebuilt as after
// a checkpoint load.
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

// Tensor `name` is in the file with `shape`: NotFound when it is absent, FailedPrecondition when
// it is shaped otherwise.
absl::Status HasTensor(const ckpt::SafetensorsFile& file, const std::string& name,
                       const std::vector<uint64_t>& shape) {
  auto it = file.entries().find(name);
  if (it == file.entries().end()) {
    return absl::NotFoundError(
        absl::StrCat(file.path(), " has no tensor ", name, " ", ShapeText(shape),
                     " of this model (names are <unit>.<tensor>, as `zerorun ckpt "
                     "consolidate` writes them)"));
  }
  if (it->second.shape != shape) {
    return absl::FailedPreconditionError(absl::StrCat(file.path(), ": tensor ", name, " is ",
                                                      ShapeText(it->second.shape), " there, ",
                                                      ShapeText(shape), " in this model"));
  }
  return absl::OkStatus();
}

// Every tensor of the model is in the file with its shape, and Adam's state of all of them or of
// none; the file's other tensors are listed.
absl::Status CheckNames(const ckpt::SafetensorsFile& file, const Layout& layout,
                        ImportReport* report) {
  std::vector<std::string> wanted;
  size_t with_adam = 0;
  std::string without_adam;
  for (const UnitLayout& unit : layout.units()) {
    for (const TensorLayout& t : unit.tensors) {
      const std::string name = TensorFullName(unit.name, t.name);
      const std::vector<uint64_t> shape(t.shape.begin(), t.shape.end());
      if (absl::Status s = HasTensor(file, name, shape); !s.ok()) {
        return absl::FailedPreconditionError(s.message());
      }
      wanted.push_back(name);
      const bool m = file.entries().count(ExpAvgName(name)) > 0;
      const bool v = file.entries().count(ExpAvgSqName(name)) > 0;
      if (m != v) {
        return absl::FailedPreconditionError(absl::StrCat(
            file.path(), " holds ", m ? ExpAvgName(name) : ExpAvgSqName(name), " but not ",
            m ? ExpAvgSqName(name) : ExpAvgName(name), ": Adam's m and v come together"));
      }
      if (m) {
        for (const std::string& state : {ExpAvgName(name), ExpAvgSqName(name)}) {
          if (absl::Status s = HasTensor(file, state, shape); !s.ok()) {
            return absl::FailedPreconditionError(s.message());
          }
          wanted.push_back(state);
        }
        ++with_adam;
      } else if (without_adam.empty()) {
        without_adam = name;
      }
    }
  }
  if (with_adam > 0 && !without_adam.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        file.path(), " holds Adam's state (", ExpAvgName("<tensor>"), ") of ", with_adam,
        " tensors but not of ", without_adam, ": a file has it for every tensor or for none"));
  }
  report->adam = with_adam > 0;
  report->tensors = wanted.size() / (report->adam ? 3 : 1);
  std::sort(wanted.begin(), wanted.end());
  for (const auto& [name, entry] : file.entries()) {
    if (!std::binary_search(wanted.begin(), wanted.end(), name)) report->unused.push_back(name);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImportReport> ImportWeights(ZeroEngine& engine, Communicator& comm,
                                           const std::string& path, int64_t step) {
  ImportReport report;
  absl::StatusOr<ckpt::SafetensorsFile> file = ckpt::SafetensorsFile::Open(path);
  absl::Status checked = file.status();
  if (checked.ok()) checked = CheckNames(*file, engine.layout(), &report);
  if (absl::Status s = ckpt::Agree(comm, checked, "importing " + path); !s.ok()) return s;

  // What this rank owns from the file: the masters, and Adam's m and v where the file has them.
  if (absl::Status s = engine.Sync(); !s.ok()) return s;
  const absl::Status read =
      ckpt::FillShard(engine, [&](const ckpt::ShardPiece& piece, float* values) {
        std::fill(values, values + piece.count, 0.0f);  // The padding between tensors; m, v.
        if (piece.array != StateArray::kMaster && !report.adam) return absl::OkStatus();
        const UnitLayout& unit = engine.layout().units()[piece.unit];
        const uint64_t begin = engine.owned_begin(piece.unit) + piece.at, end = begin + piece.count;
        for (const TensorLayout& t : unit.tensors) {
          const uint64_t lo = std::max<uint64_t>(begin, t.offset);
          const uint64_t hi = std::min<uint64_t>(end, t.offset + t.numel);
          if (lo >= hi) continue;
          const std::string name = TensorFullName(unit.name, t.name);
          absl::Status s = file->ReadFloats(piece.array == StateArray::kMaster ? name
                                            : piece.array == StateArray::kM    ? ExpAvgName(name)
                                                                               : ExpAvgSqName(name),
                                            lo - t.offset, hi - t.offset, values + (lo - begin));
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      });
  if (absl::Status s = ckpt::Agree(comm, read, "reading " + path); !s.ok()) return s;
  if (absl::Status s = engine.FinishRestore(step, engine.scaler()); !s.ok()) return s;
  return report;
}

}  // namespace zerorun
