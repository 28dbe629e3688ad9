// ZeRO's memory layout, pure arithmetic: each unit (layer) is one flat buffer with every tensor
// start aligned and the total padded to world x align, so rank r owns the contiguous slice
// [r * shard, (r + 1) * shard) of every unit; a rank's optimizer state is the concatenation of
// its slices in unit order (one dense index space).
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_PARTITION_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_PARTITION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  // AdamW's weight decay for this tensor; negative: the optimizer's (a torch param group with
  // weight_decay 0 for biases and norms sets 0 here).
  float weight_decay = -1;
};

// A tensor's model-wide name, as checkpoints, consolidation and imports use it: "<unit>.<tensor>",
// or the tensor's own name in a unit named "" (a model's root: zerorun.torch names tensors by
// their state_dict keys relative to the unit, so consolidation writes the model's own names).
inline std::string TensorFullName(const std::string& unit, const std::string& tensor) {
  return unit.empty() ? tensor : unit + "." + tensor;
}

struct UnitSpec {
  std::string name;
  std::vector<TensorSpec> tensors;
};

struct TensorLayout {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // In the unit's flat buffer; a multiple of the alignment.
  size_t numel = 0;
  float weight_decay = -1;  // TensorSpec's.
};

struct UnitLayout {
  std::string name;
  std::vector<TensorLayout> tensors;
  size_t numel = 0;         // Sum of the tensors' elements (no padding).
  size_t padded = 0;        // Flat buffer size: a multiple of world_size x align.
  size_t shard = 0;         // padded / world_size.
  size_t state_offset = 0;  // Where this unit's shard starts in a rank's dense state arrays.
};

// The part of one tensor that one rank owns: tensor elements [begin, end), which sit at
// [state_index, state_index + end - begin) of that rank's dense state arrays.
struct OwnedSlice {
  size_t unit = 0;
  size_t tensor = 0;
  size_t begin = 0;
  size_t end = 0;
  size_t state_index = 0;
};

class Layout {
 public:
  // InvalidArgument for world_size < 1, align < 1, an empty unit list, a unit without tensors,
  // a non-positive dimension, or duplicate names.
  static absl::StatusOr<Layout> Build(const std::vector<UnitSpec>& units, int world_size,
                                      size_t align);

  int world_size() const { return world_size_; }
  const std::vector<UnitLayout>& units() const { return units_; }
  size_t num_params() const;     // Real elements over all units.
  size_t padded_params() const;  // Flat elements over all units (what the full buffers hold).
  size_t max_padded() const;     // The largest unit's padded elements (a unit-sized buffer).
  size_t state_size() const;     // Elements of one rank's dense state arrays: sum of shards.
  // Every tensor slice rank `rank` owns, in state order. Slices of padding are not listed.
  std::vector<OwnedSlice> Owned(int rank) const;

 private:
  int world_size_ = 1;
  std::vector<UnitLayout> units_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_PARTITION_H_
