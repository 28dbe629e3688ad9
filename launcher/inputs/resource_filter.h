// The resource filter: --include / --exclude / --num_nodes / --num_gpus applied to a hostfile,
// with DeepSpeed's semantics and its three known bugs fixed (reference section 3).
#ifndef ZERORUN_LAUNCHER_INPUTS_RESOURCE_FILTER_H_
#define ZERORUN_LAUNCHER_INPUTS_RESOURCE_FILTER_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inputs/hostfile.h"

namespace zerorun::launcher {

struct FilterOptions {
  std::string include;  // NAME[:SLOT[,SLOT...]][@NAME...]; empty = unset.
  std::string exclude;
  int num_nodes = -1;  // -1 = unset.
  int num_gpus = -1;   // -1 = unset.
};

// The job's hosts in node-rank order, each with the slots it will use.
struct ResourcePlan {
  std::vector<Host> hosts;
  std::vector<std::string> warnings;
  int WorldSize() const;
};

// A parsed --include/--exclude spec: host -> slots, nullopt meaning the whole node.
using NodeSpec = std::map<std::string, std::optional<std::set<int>>>;

// Parses NAME[:SLOT[,SLOT...]][@NAME...]. Repeated hosts are merged (a whole-node mention wins).
// Returns InvalidArgument naming the flag, the bad part and the expected form for an empty
// element, a missing or non-integer slot, or more than one ':'.
absl::StatusOr<NodeSpec> ParseNodeSpec(absl::string_view flag, absl::string_view spec);

// Applies the filter to `hostfile`. Errors:
//   InvalidArgument: include with exclude, num_* with include/exclude, malformed spec
//     (DeepSpeed's messages where it has one);
//   FailedPrecondition: a host or slot the hostfile does not have, --num_nodes above the host
//     count, or nothing left to run on.
// Unlike DeepSpeed: a whole-node include keeps all slots, `a@b:0,2` keeps all of a, and include
// slots are checked against the host's slots.
absl::StatusOr<ResourcePlan> ApplyFilter(const Hostfile& hostfile, const FilterOptions& options);

// The implicit hostfile when none is given: "localhost" with `slot_ids`.
Hostfile LocalHostfile(std::vector<int> slot_ids);

// DeepSpeed's no-hostfile rule: CUDA_VISIBLE_DEVICES (when set and no filter flag is given)
// becomes --include localhost:<ids>. Sets *note to what was done; InvalidArgument for ids that
// are not non-negative integers.
absl::Status ApplyVisibleDevices(const char* cuda_visible_devices, FilterOptions* options,
                                 std::string* note);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_INPUTS_RESOURCE_FILTER_H_
