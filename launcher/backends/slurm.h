// Slurm's view of an allocation: the compressed host lists of SLURM_JOB_NODELIST
// ("node[01-04,07]", expanded as `scontrol show hostnames` does), the per-node counts of
// SLURM_JOB_CPUS_PER_NODE / SLURM_TASKS_PER_NODE ("4(x2),2"), and the hostfile they make.
#ifndef ZERORUN_LAUNCHER_BACKENDS_SLURM_H_
#define ZERORUN_LAUNCHER_BACKENDS_SLURM_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorun::launcher {

// Expands a Slurm host list: names separated by ',' (or whitespace), each a prefix with bracketed
// ranges ("tux[0-5,12,20-25]"), several brackets in one name as their product (the last varying
// fastest: "r[1-2]-g[1-2]" is r1-g1 r1-g2 r2-g1 r2-g2), numbers zero-padded to the width of the
// range's low bound ("n[08-10]": n08 n09 n10). Order and duplicates are kept as written.
// InvalidArgument naming the list and the fault for an unbalanced bracket, text after the last
// bracket ("n[1-3]x", which Slurm refuses too), an empty or reversed range, a non-number, or
// more than 65536 hosts.
absl::StatusOr<std::vector<std::string>> ExpandHostlist(absl::string_view list);

// Expands Slurm's per-node counts: "4(x2),2,8" is {4, 4, 2, 8}. InvalidArgument otherwise.
absl::StatusOr<std::vector<int>> ExpandNodeCounts(absl::string_view counts);

// A Slurm allocation as zerorun uses it.
struct SlurmAllocation {
  std::string job_id;              // SLURM_JOB_ID.
  std::string nodelist;            // SLURM_JOB_NODELIST as given.
  std::vector<std::string> nodes;  // Expanded, in Slurm's node order (= node rank).
  std::vector<int> slots;          // Ranks per node.
  std::string slots_from;          // The variable the slot counts came from, for messages.
};

// The allocation this process runs in, from `env` (getenv's shape): FailedPrecondition naming
// the missing variable and the fix (run inside salloc/sbatch) outside one. Slots per node, the
// first that applies: --ntasks-per-node (SLURM_NTASKS_PER_NODE); -n (SLURM_NTASKS, spread as
// SLURM_TASKS_PER_NODE says); with `gpu` the GPUs per node (SLURM_GPUS_PER_NODE "[type:]N", else
// this node's SLURM_GPUS_ON_NODE for every node); the CPUs per node (SLURM_JOB_CPUS_PER_NODE).
absl::StatusOr<SlurmAllocation> AllocationFromEnvironment(
    const std::function<std::optional<std::string>(const char*)>& env, bool gpu);

// A YAML hostfile of the allocation's nodes whose agents listen on `ports` (one per node).
std::string AllocationHostfile(const SlurmAllocation& allocation, const std::vector<int>& ports);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_BACKENDS_SLURM_H_
