// Layout::Build and the owned-slice intersections.
#include "zerorun/partition.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace zerorun {
namespace {

size_t RoundUp(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

}  // namespace

absl::StatusOr<Layout> Layout::Build(const std::vector<UnitSpec>& units, int world_size,
                                     size_t align) {
  if (world_size < 1) return absl::InvalidArgumentError("world_size must be >= 1");
  if (align < 1) return absl::InvalidArgumentError("align must be >= 1 element");
  if (units.empty()) return absl::InvalidArgumentError("no units registered");
  Layout layout;
  layout.world_size_ = world_size;
  std::set<std::string> names;
  size_t state_offset = 0;
  for (const UnitSpec& spec : units) {
    if (spec.tensors.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("unit '", spec.name, "' has no tensors"));
    }
    UnitLayout unit;
    unit.name = spec.name;
    size_t offset = 0;
    for (const TensorSpec& t : spec.tensors) {
      const std::string full = TensorFullName(spec.name, t.name);
      if (!names.insert(full).second) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", full, "' registered twice"));
      }
      size_t numel = 1;
      for (int64_t d : t.shape) {
        if (d <= 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("tensor '", full, "' has a non-positive dimension ", d));
        }
        numel *= static_cast<size_t>(d);
      }
      offset = RoundUp(offset, align);
      unit.tensors.push_back({t.name, t.shape, offset, numel, t.weight_decay});
      offset += numel;
      unit.numel += numel;
    }
    unit.padded = RoundUp(offset, static_cast<size_t>(world_size) * align);
    unit.shard = unit.padded / static_cast<size_t>(world_size);
    unit.state_offset = state_offset;
    state_offset += unit.shard;
    layout.units_.push_back(std::move(unit));
  }
  return layout;
}

size_t Layout::num_params() const {
  size_t n = 0;
  for (const UnitLayout& u : units_) n += u.numel;
  return n;
}

size_t Layout::padded_params() const {
  size_t n = 0;
  for (const UnitLayout& u : units_) n += u.padded;
  return n;
}

size_t Layout::max_padded() const {
  size_t n = 0;
  for (const UnitLayout& u : units_) n = std::max(n, u.padded);
  return n;
}

size_t Layout::state_size() const {
  size_t n = 0;
  for (const UnitLayout& u : units_) n += u.shard;
  return n;
}

std::vector<OwnedSlice> Layout::Owned(int rank) const {
  std::vector<OwnedSlice> slices;
  for (size_t ui = 0; ui < units_.size(); ++ui) {
    const UnitLayout& u = units_[ui];
    const size_t lo = static_cast<size_t>(rank) * u.shard, hi = lo + u.shard;
    for (size_t ti = 0; ti < u.tensors.size(); ++ti) {
      const TensorLayout& t = u.tensors[ti];
      const size_t begin = std::max(lo, t.offset), end = std::min(hi, t.offset + t.numel);
      if (begin >= end) continue;
      slices.push_back({ui, ti, begin - t.offset, end - t.offset, u.state_offset + begin - lo});
    }
  }
  return slices;
}

}  // namespace zerorun
