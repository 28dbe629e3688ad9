// Resource filter: include/exclude specs, --num_nodes/--num_gpus, CUDA_VISIBLE_DEVICES.
#include "inputs/resource_filter.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace zerorun::launcher {
namespace {

constexpr char kSpecForm[] =
    "the form is NAME[:SLOT[,SLOT...]][@NAME[:SLOT...]...], e.g. 'worker-0@worker-1:0,2'";

absl::Status Malformed(absl::string_view flag, absl::string_view spec, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " '", spec, "': ", why, "; ", kSpecForm));
}

std::string SlotList(const std::vector<int>& slots) {
  return slots.empty() ? "none" : absl::StrJoin(slots, ",");
}

const Host* FindHost(const Hostfile& hostfile, const std::string& name) {
  for (const Host& host : hostfile.hosts) {
    if (host.name == name) return &host;
  }
  return nullptr;
}

// Checks every host and slot of `spec` against the hostfile (DeepSpeed's messages).
absl::Status CheckAgainstHostfile(const Hostfile& hostfile, absl::string_view flag,
                                  const NodeSpec& spec) {
  for (const auto& [name, slots] : spec) {
    const Host* host = FindHost(hostfile, name);
    if (host == nullptr) {
      std::vector<std::string> names;
      for (const Host& h : hostfile.hosts) names.push_back(h.name);
      return absl::FailedPreconditionError(
          absl::StrCat("--", flag, ": Hostname '", name, "' not found in hostfile",
                       hostfile.path.empty() ? "" : absl::StrCat(" ", hostfile.path),
                       ". Hosts there: ", absl::StrJoin(names, ", ")));
    }
    if (!slots.has_value()) continue;
    for (int slot : *slots) {
      if (!std::binary_search(host->slots.begin(), host->slots.end(), slot)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--", flag, ": No slot '", slot, "' specified on host '", name,
            "'. Slots there: ", SlotList(host->slots), " (hostfile line ", host->line, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

int ResourcePlan::WorldSize() const {
  int total = 0;
  for (const Host& host : hosts) total += static_cast<int>(host.slots.size());
  return total;
}

absl::StatusOr<NodeSpec> ParseNodeSpec(absl::string_view flag, absl::string_view spec) {
  NodeSpec result;
  for (absl::string_view element : absl::StrSplit(spec, '@')) {
    if (element.empty()) return Malformed(flag, spec, "empty host name (a stray '@'?)");
    std::vector<absl::string_view> parts = absl::StrSplit(element, ':');
    if (parts.size() > 2) {
      return Malformed(flag, spec, absl::StrCat("'", element, "' has more than one ':'"));
    }
    const std::string name(parts[0]);
    if (name.empty())
      return Malformed(flag, spec, absl::StrCat("'", element, "' has no host name"));
    if (parts.size() == 1) {
      result[name] = std::nullopt;  // Whole node; wins over any slot list for the same host.
      continue;
    }
    if (parts[1].empty()) {
      return Malformed(flag, spec, absl::StrCat("'", element, "' has no slot after ':'"));
    }
    std::set<int> slots;
    for (absl::string_view text : absl::StrSplit(parts[1], ',')) {
      int slot = 0;
      if (!absl::SimpleAtoi(text, &slot) || slot < 0) {
        return Malformed(flag, spec,
                         absl::StrCat("slot '", text, "' of host '", name,
                                      "' is not a GPU index (a non-negative integer)"));
      }
      slots.insert(slot);
    }
    auto it = result.find(name);
    if (it == result.end()) {
      result[name] = std::move(slots);
    } else if (it->second.has_value()) {
      it->second->insert(slots.begin(), slots.end());
    }
  }
  return result;
}

absl::StatusOr<ResourcePlan> ApplyFilter(const Hostfile& hostfile, const FilterOptions& options) {
  const bool has_include = !options.include.empty();
  const bool has_exclude = !options.exclude.empty();
  if (has_include && has_exclude) {
    return absl::InvalidArgumentError(
        "include_str and exclude_str are mutually exclusive. Fix: pass only one of "
        "--include/--exclude");
  }
  if ((has_include || has_exclude) && (options.num_nodes >= 0 || options.num_gpus >= 0)) {
    return absl::InvalidArgumentError(
        "Cannot specify num_nodes/gpus with include/exclude. Fix: select resources with either "
        "--include/--exclude or --num_nodes/--num_gpus");
  }
  ResourcePlan plan;
  if (has_include || has_exclude) {
    const char* flag = has_include ? "include" : "exclude";
    auto spec = ParseNodeSpec(flag, has_include ? options.include : options.exclude);
    if (!spec.ok()) return spec.status();
    if (absl::Status s = CheckAgainstHostfile(hostfile, flag, *spec); !s.ok()) return s;
    for (const Host& host : hostfile.hosts) {  // Hostfile order, never the spec's order.
      auto it = spec->find(host.name);
      Host kept = host;
      if (has_include) {
        if (it == spec->end()) continue;
        if (it->second.has_value()) kept.slots.assign(it->second->begin(), it->second->end());
      } else if (it != spec->end()) {
        if (!it->second.has_value()) continue;
        kept.slots.clear();
        for (int slot : host.slots) {
          if (it->second->count(slot) == 0) kept.slots.push_back(slot);
        }
      }
      plan.hosts.push_back(std::move(kept));
    }
  } else {
    plan.hosts = hostfile.hosts;
  }
  if (options.num_nodes >= 0) {
    if (hostfile.path.empty() && options.num_nodes > 1) {
      return absl::FailedPreconditionError(
          "Num nodes is >1 but no extra nodes available via hostfile. Fix: pass --hostfile "
          "with the nodes to use");
    }
    if (options.num_nodes == 0 || options.num_nodes > static_cast<int>(plan.hosts.size())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--num_nodes ", options.num_nodes, " but the hostfile has ", plan.hosts.size(),
          " host(s). Fix: pass a value from 1 to ", plan.hosts.size()));
    }
    plan.hosts.resize(options.num_nodes);
  }
  if (options.num_gpus >= 0) {
    for (Host& host : plan.hosts) {
      if (options.num_gpus > static_cast<int>(host.slots.size())) {
        plan.warnings.push_back(absl::StrCat(
            "--num_gpus ", options.num_gpus, " exceeds the ", host.slots.size(),
            " slot(s) of host '", host.name, "' (DeepSpeed uses GPUs 0..", options.num_gpus - 1,
            " anyway, as zerorun does; the GPU count check verifies they exist)"));
      }
      host.slots.clear();
      for (int i = 0; i < options.num_gpus; ++i) host.slots.push_back(i);
    }
  }
  plan.hosts.erase(std::remove_if(plan.hosts.begin(), plan.hosts.end(),
                                  [](const Host& h) { return h.slots.empty(); }),
                   plan.hosts.end());
  if (plan.hosts.empty()) {
    return absl::FailedPreconditionError(
        "no slots left to run on after the resource filter (every host has slots=0 or was "
        "excluded). Fix: check slots= in the hostfile and the --include/--exclude/--num_gpus "
        "flags");
  }
  return plan;
}

Hostfile LocalHostfile(std::vector<int> slot_ids) {
  Hostfile hostfile;
  Host host;
  host.name = "localhost";
  host.address = "localhost";
  host.slots = std::move(slot_ids);
  hostfile.hosts.push_back(std::move(host));
  return hostfile;
}

absl::Status ApplyVisibleDevices(const char* cuda_visible_devices, FilterOptions* options,
                                 std::string* note) {
  if (cuda_visible_devices == nullptr) return absl::OkStatus();
  absl::string_view ids = absl::StripAsciiWhitespace(cuda_visible_devices);
  if (!options->include.empty() || !options->exclude.empty() || options->num_nodes >= 0 ||
      options->num_gpus >= 0) {
    *note = absl::StrCat("Detected CUDA_VISIBLE_DEVICES=", ids,
                         " but ignoring it because one or several of --include/--exclude/"
                         "--num_gpus/--num_nodes is set");
    return absl::OkStatus();
  }
  if (ids.empty()) return absl::OkStatus();
  for (absl::string_view id : absl::StrSplit(ids, ',')) {
    int value = 0;
    if (!absl::SimpleAtoi(id, &value) || value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CUDA_VISIBLE_DEVICES=", ids, ": '", id,
          "' is not a GPU index; zerorun maps only integer ids to slots. Fix: use indices "
          "(e.g. 0,2) or select GPUs with --include localhost:0,2"));
    }
  }
  options->include = absl::StrCat("localhost:", ids);
  *note = absl::StrCat("Detected CUDA_VISIBLE_DEVICES=", ids, ": using --include localhost:", ids);
  return absl::OkStatus();
}

}  // namespace zerorun::launcher
