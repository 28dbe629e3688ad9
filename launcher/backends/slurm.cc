// Slurm host lists, node counts and the allocation's hostfile (see slurm.h).
#include "backends/slurm.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace zerorun::launcher {
namespace {

constexpr size_t kMaxHosts = 65536;

absl::Status Bad(absl::string_view list, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("host list '", list, "': ", why));
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The numbers of one bracket's ranges ("0-5,12"), zero-padded to each low bound's width.
absl::StatusOr<std::vector<std::string>> ExpandRanges(absl::string_view list,
                                                      absl::string_view ranges) {
  std::vector<std::string> out;
  for (absl::string_view range : absl::StrSplit(ranges, ',')) {
    const size_t dash = range.find('-');
    const absl::string_view lo = range.substr(0, dash);
    const absl::string_view hi = dash == absl::string_view::npos ? lo : range.substr(dash + 1);
    uint64_t a = 0, b = 0;
    if (!AllDigits(lo) || !AllDigits(hi) || lo.size() > 18 || hi.size() > 18 ||
        !absl::SimpleAtoi(lo, &a) || !absl::SimpleAtoi(hi, &b)) {
      return Bad(list, absl::StrCat("'", range, "' is not a number or a range N-M"));
    }
    if (a > b) return Bad(list, absl::StrCat("range '", range, "' runs backwards"));
    if (b - a >= kMaxHosts || out.size() + (b - a + 1) > kMaxHosts) {
      return Bad(list, absl::StrCat("more than ", kMaxHosts, " hosts"));
    }
    for (uint64_t n = a; n <= b; ++n) {
      std::string digits = std::to_string(n);
      if (digits.size() < lo.size()) digits.insert(0, lo.size() - digits.size(), '0');
      out.push_back(std::move(digits));
    }
  }
  return out;
}

// One name with any number of brackets: their product in the order `scontrol show hostnames`
// gives it. The last bracket varies fastest; before it the others, the first fastest and the one
// before the last slowest (a[1-2]b[1-2]c[1-2]: a1b1c1 a1b1c2 a2b1c1 a2b1c2 a1b2c1 ...).
absl::StatusOr<std::vector<std::string>> ExpandName(absl::string_view list,
                                                    absl::string_view name) {
  std::vector<std::string> texts;                 // Before each bracket.
  std::vector<std::vector<std::string>> numbers;  // Each bracket's numbers.
  size_t at = 0;
  while (true) {
    const size_t open = name.find('[', at);
    const size_t stray = name.find(']', at);
    if (open == absl::string_view::npos) {
      if (stray != absl::string_view::npos) return Bad(list, "']' without '['");
      if (!numbers.empty() && at < name.size()) {
        return Bad(list,
                   absl::StrCat("text after the last ']' in '", name, "' (Slurm refuses it)"));
      }
      texts.emplace_back(name.substr(at));
      break;
    }
    if (stray < open) return Bad(list, "']' without '['");
    const size_t close = name.find(']', open);
    if (close == absl::string_view::npos) return Bad(list, "'[' without ']'");
    const absl::string_view inside = name.substr(open + 1, close - open - 1);
    if (inside.find('[') != absl::string_view::npos) return Bad(list, "nested '['");
    absl::StatusOr<std::vector<std::string>> expanded = ExpandRanges(list, inside);
    if (!expanded.ok()) return expanded.status();
    texts.emplace_back(name.substr(at, open - at));
    numbers.push_back(*std::move(expanded));
    at = close + 1;
  }
  size_t total = 1;
  for (const std::vector<std::string>& n : numbers) {
    total *= n.size();
    if (total > kMaxHosts) return Bad(list, absl::StrCat("more than ", kMaxHosts, " hosts"));
  }
  // An odometer over the brackets, its digits from the fastest: the last, then the first, the
  // second, ... the one before the last.
  std::vector<size_t> order;
  if (!numbers.empty()) order.push_back(numbers.size() - 1);
  for (size_t b = 0; b + 1 < numbers.size(); ++b) order.push_back(b);
  std::vector<size_t> digit(numbers.size(), 0);
  std::vector<std::string> out;
  out.reserve(total);
  for (size_t i = 0; i < total; ++i) {
    std::string host;
    for (size_t b = 0; b < numbers.size(); ++b)
      absl::StrAppend(&host, texts[b], numbers[b][digit[b]]);
    absl::StrAppend(&host, texts.back());
    out.push_back(std::move(host));
    for (size_t b : order) {
      if (++digit[b] < numbers[b].size()) break;
      digit[b] = 0;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandHostlist(absl::string_view list) {
  std::vector<std::string> hosts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    const char c = i < list.size() ? list[i] : ',';
    if (c == '[') ++depth;
    if (c == ']') --depth;
    const bool separator = c == ',' || absl::ascii_isspace(static_cast<unsigned char>(c));
    if (!separator || depth > 0) continue;
    const absl::string_view name = list.substr(start, i - start);
    start = i + 1;
    if (name.empty()) continue;
    absl::StatusOr<std::vector<std::string>> expanded = ExpandName(list, name);
    if (!expanded.ok()) return expanded.status();
    if (hosts.size() + expanded->size() > kMaxHosts) {
      return Bad(list, absl::StrCat("more than ", kMaxHosts, " hosts"));
    }
    hosts.insert(hosts.end(), expanded->begin(), expanded->end());
  }
  if (depth != 0) return Bad(list, "'[' without ']'");
  if (hosts.empty()) return Bad(list, "no hosts");
  return hosts;
}

absl::StatusOr<std::vector<int>> ExpandNodeCounts(absl::string_view counts) {
  std::vector<int> out;
  for (absl::string_view item : absl::StrSplit(counts, ',')) {
    int count = 0, repeat = 1;
    absl::string_view number = item;
    if (const size_t paren = item.find("(x"); paren != absl::string_view::npos) {
      number = item.substr(0, paren);
      const absl::string_view times = item.substr(paren + 2);
      if (times.empty() || times.back() != ')' ||
          !absl::SimpleAtoi(times.substr(0, times.size() - 1), &repeat) || repeat < 1 ||
          repeat > static_cast<int>(kMaxHosts)) {
        return absl::InvalidArgumentError(
            absl::StrCat("node counts '", counts, "': '", item, "' is not N or N(xM)"));
      }
    }
    if (!AllDigits(number) || !absl::SimpleAtoi(number, &count) ||
        out.size() + repeat > kMaxHosts) {
      return absl::InvalidArgumentError(
          absl::StrCat("node counts '", counts, "': '", item, "' is not N or N(xM)"));
    }
    out.insert(out.end(), static_cast<size_t>(repeat), count);
  }
  return out;
}

absl::StatusOr<SlurmAllocation> AllocationFromEnvironment(
    const std::function<std::optional<std::string>(const char*)>& env, bool gpu) {
  auto need = [&](const char* name) -> absl::StatusOr<std::string> {
    std::optional<std::string> value = env(name);
    if (!value.has_value() || value->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--launcher slurm: ", name,
          " is not set, so this is not inside a Slurm allocation. Fix: run zerorun in an sbatch "
          "script or under salloc (e.g. 'salloc -N2 --ntasks-per-node=8 zerorun --launcher "
          "slurm ...')"));
    }
    return *value;
  };
  SlurmAllocation a;
  absl::StatusOr<std::string> id = need("SLURM_JOB_ID");
  if (!id.ok()) return id.status();
  a.job_id = *id;
  absl::StatusOr<std::string> nodelist = need("SLURM_JOB_NODELIST");
  if (!nodelist.ok()) return nodelist.status();
  a.nodelist = *nodelist;
  absl::StatusOr<std::vector<std::string>> nodes = ExpandHostlist(a.nodelist);
  if (!nodes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SLURM_JOB_NODELIST: ", nodes.status().message()));
  }
  a.nodes = *std::move(nodes);
  // The per-node slot counts: one number for every node, or Slurm's N(xM) list.
  auto counts = [&](const char* name, absl::string_view value) -> absl::Status {
    absl::StatusOr<std::vector<int>> n = ExpandNodeCounts(value);
    if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", n.status().message()));
    if (n->size() == 1) n->assign(a.nodes.size(), n->front());
    if (n->size() != a.nodes.size()) {
      return absl::InvalidArgumentError(absl::StrCat(name, "='", value, "' gives ", n->size(),
                                                     " node(s), SLURM_JOB_NODELIST='", a.nodelist,
                                                     "' ", a.nodes.size()));
    }
    a.slots = *std::move(n);
    a.slots_from = absl::StrCat(name, "=", value);
    return absl::OkStatus();
  };
  if (std::optional<std::string> v = env("SLURM_NTASKS_PER_NODE"); v && !v->empty()) {
    if (absl::Status s = counts("SLURM_NTASKS_PER_NODE", *v); !s.ok()) return s;
  } else if (std::optional<std::string> n = env("SLURM_NTASKS"); n && !n->empty()) {
    absl::StatusOr<std::string> spread = need("SLURM_TASKS_PER_NODE");
    if (!spread.ok()) return spread.status();
    if (absl::Status s = counts("SLURM_TASKS_PER_NODE", *spread); !s.ok()) return s;
  } else if (std::optional<std::string> g = env("SLURM_GPUS_PER_NODE"); gpu && g && !g->empty()) {
    const size_t colon = g->rfind(':');
    const std::string number = colon == std::string::npos ? *g : g->substr(colon + 1);
    if (absl::Status s = counts("SLURM_GPUS_PER_NODE", number); !s.ok()) return s;
  } else if (std::optional<std::string> o = env("SLURM_GPUS_ON_NODE"); gpu && o && !o->empty()) {
    if (absl::Status s = counts("SLURM_GPUS_ON_NODE", *o); !s.ok()) return s;
  } else {
    absl::StatusOr<std::string> cpus = need("SLURM_JOB_CPUS_PER_NODE");
    if (!cpus.ok()) return cpus.status();
    if (absl::Status s = counts("SLURM_JOB_CPUS_PER_NODE", *cpus); !s.ok()) return s;
  }
  return a;
}

std::string AllocationHostfile(const SlurmAllocation& allocation, const std::vector<int>& ports) {
  std::string yaml = absl::StrCat("# zerorun --launcher slurm: Slurm job ", allocation.job_id,
                                  ", SLURM_JOB_NODELIST=", allocation.nodelist, ", slots from ",
                                  allocation.slots_from, "\nhosts:\n");
  for (size_t i = 0; i < allocation.nodes.size(); ++i) {
    absl::StrAppend(&yaml, "  - {name: ", allocation.nodes[i],
                    ", agent_port: ", i < ports.size() ? ports[i] : 0,
                    ", slots: ", allocation.slots[i], "}\n");
  }
  return yaml;
}

}  // namespace zerorun::launcher
