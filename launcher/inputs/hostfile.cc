// Hostfile parsing: DeepSpeed's `host slots=N` grammar with its exact errors, and the YAML form.
#include "inputs/hostfile.h"

#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "dsconfig/input_limits.h"
#include "dsconfig/suggest.h"
#include "yaml-cpp/yaml.h"

namespace zerorun::launcher {
namespace {

using dsconfig::DidYouMean;

constexpr char kSlotsFix[] = "write one host per line as 'HOST slots=N', e.g. 'worker-0 slots=8'";

absl::Status BadEntry(absl::string_view path, int line, absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ":", line, ": Hostfile contains a bad entry: ", text,
                   ", unable to proceed with launching. Fix: ", kSlotsFix));
}

absl::Status Duplicate(absl::string_view path, int line, int first_line, absl::string_view host) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ":", line, ": Hostfile contains multiple entries for ", host,
                   ", unable to proceed with launching (first entry at line ", first_line,
                   "). Fix: keep one line per host and put all its slots there"));
}

std::vector<int> Range(int n) {
  std::vector<int> slots(n);
  for (int i = 0; i < n; ++i) slots[i] = i;
  return slots;
}

// The DeepSpeed/MPI grammar (reference section 2).
absl::StatusOr<Hostfile> ParseText(absl::string_view path, absl::string_view text) {
  Hostfile hostfile;
  hostfile.path = std::string(path);
  std::map<std::string, int> first_line;
  int line_number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    // ^(\S+)\s+slots=(\d+): the host is the first word, then whitespace, then slots=DIGITS.
    size_t end = 0;
    while (end < line.size() && !absl::ascii_isspace(line[end])) ++end;
    absl::string_view host = line.substr(0, end);
    absl::string_view rest = line.substr(end);
    const size_t after_space = rest.find_first_not_of(" \t\r\f\v");
    if (after_space == 0 || after_space == absl::string_view::npos) {
      return BadEntry(path, line_number, line);
    }
    rest = rest.substr(after_space);
    if (!absl::ConsumePrefix(&rest, "slots=")) return BadEntry(path, line_number, line);
    size_t digits = 0;
    while (digits < rest.size() && absl::ascii_isdigit(rest[digits])) ++digits;
    if (digits == 0) return BadEntry(path, line_number, line);
    int slots = 0;
    if (!absl::SimpleAtoi(rest.substr(0, digits), &slots) || slots > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": slots=", rest.substr(0, digits), " for host ",
                       host, " is out of range. Fix: give the number of GPUs (0-4096)"));
    }
    absl::string_view trailing = absl::StripLeadingAsciiWhitespace(rest.substr(digits));
    if (!trailing.empty() && !absl::StartsWith(trailing, "#")) {
      hostfile.warnings.push_back(absl::StrCat(
          path, ":", line_number, ": text after 'slots=", slots, "' is ignored: '", trailing,
          "' (DeepSpeed ignores it silently). Fix: remove it or make it a '#' comment"));
    }
    auto [it, inserted] = first_line.emplace(std::string(host), line_number);
    if (!inserted) return Duplicate(path, line_number, it->second, host);
    Host h;
    h.name = std::string(host);
    h.address = h.name;
    h.slots = Range(slots);
    h.line = line_number;
    hostfile.hosts.push_back(std::move(h));
  }
  if (hostfile.hosts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": Hostfile is empty or not formatted correctly, unable to proceed with launching. "
        "Fix: ",
        kSlotsFix));
  }
  return hostfile;
}

const std::vector<std::string>& YamlHostKeys() {
  static const auto* keys = new std::vector<std::string>{
      "name", "address", "agent_port", "slots", "nvme_path", "checkpoint_dir", "output_dir"};
  return *keys;
}

// Converts a yaml-cpp scalar, turning its exception into a Status naming the line.
template <typename T>
absl::StatusOr<T> Scalar(const YAML::Node& node, absl::string_view path, absl::string_view key,
                         absl::string_view expected) {
  try {
    if (!node.IsScalar()) throw YAML::Exception(node.Mark(), "not a scalar");
    return node.as<T>();
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", node.Mark().line + 1, ": '", key, "' must be ", expected));
  }
}

absl::StatusOr<Host> ParseYamlHost(const YAML::Node& entry, absl::string_view path) {
  const int line = entry.Mark().line + 1;
  if (!entry.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", line,
                     ": each item of 'hosts' must be a map with name and slots, e.g. "
                     "'- {name: worker-0, slots: 8}'"));
  }
  Host host;
  host.line = line;
  bool has_slots = false;
  for (const auto& kv : entry) {
    if (!kv.first.IsScalar()) {  // e.g. '{[a]: 1}': a key yaml-cpp cannot read as a string.
      return absl::InvalidArgumentError(absl::StrCat(path, ":", kv.first.Mark().line + 1,
                                                     ": a host key must be a plain word, e.g. "
                                                     "'name', 'address' or 'slots'"));
    }
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& value = kv.second;
    const int key_line = kv.first.Mark().line + 1;
    if (key == "name" || key == "address") {
      auto text = Scalar<std::string>(value, path, key, "a string");
      if (!text.ok()) return text.status();
      (key == "name" ? host.name : host.address) = *text;
    } else if (key == "agent_port") {
      auto port = Scalar<int>(value, path, key, "a port number 1-65535");
      if (!port.ok()) return port.status();
      if (*port < 1 || *port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", key_line, ": agent_port ", *port,
                                                       " is not a port number 1-65535"));
      }
      host.agent_port = *port;
    } else if (key == "slots") {
      has_slots = true;
      if (value.IsSequence()) {
        std::set<int> ids;
        for (const auto& id : value) {
          auto slot = Scalar<int>(id, path, "slots", "a list of GPU ids, e.g. [0, 1, 2, 3]");
          if (!slot.ok()) return slot.status();
          if (*slot < 0 || !ids.insert(*slot).second) {
            return absl::InvalidArgumentError(absl::StrCat(
                path, ":", key_line, ": slot id ", *slot,
                " is negative or listed twice. Fix: list each GPU id once, e.g. [0, 1, 2, 3]"));
          }
        }
        host.slots.assign(ids.begin(), ids.end());
      } else {
        auto count = Scalar<int>(value, path, key, "a count (e.g. 8) or a list of GPU ids");
        if (!count.ok()) return count.status();
        if (*count < 0 || *count > 4096) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ":", key_line, ": slots ", *count, " is out of range 0-4096"));
        }
        host.slots = Range(*count);
      }
    } else if (absl::EndsWith(key, "_path") || absl::EndsWith(key, "_dir")) {
      auto text = Scalar<std::string>(value, path, key, "a path");
      if (!text.ok()) return text.status();
      host.paths[key] = *text;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", key_line, ": unknown host key '", key, "'", DidYouMean(key, YamlHostKeys()),
          ". Known keys: ", absl::StrJoin(YamlHostKeys(), ", "), " (and any *_path / *_dir)"));
    }
  }
  if (host.name.empty() || !has_slots) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":", line,
        ": a host needs both 'name' and 'slots', e.g. '- {name: worker-0, slots: 8}'"));
  }
  if (host.address.empty()) host.address = host.name;
  return host;
}

absl::StatusOr<Hostfile> ParseYaml(absl::string_view path, absl::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  const YAML::Node hosts = root.IsMap() ? root["hosts"] : YAML::Node();
  if (!hosts || !hosts.IsSequence() || hosts.size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": a YAML hostfile needs a non-empty 'hosts:' list, e.g.\n  hosts:\n"
                     "    - {name: worker-0, address: 10.0.0.1, slots: 8}"));
  }
  Hostfile hostfile;
  hostfile.path = std::string(path);
  std::map<std::string, int> first_line;
  for (const auto& entry : hosts) {
    absl::StatusOr<Host> host;
    try {  // yaml-cpp throws from conversions; none may escape as an abort.
      host = ParseYamlHost(entry, path);
    } catch (const YAML::Exception& e) {
      host = absl::InvalidArgumentError(
          absl::StrCat(path, ":", e.mark.line + 1, ": not a valid host entry: ", e.msg));
    }
    if (!host.ok()) return host.status();
    auto [it, inserted] = first_line.emplace(host->name, host->line);
    if (!inserted) return Duplicate(path, host->line, it->second, host->name);
    hostfile.hosts.push_back(*std::move(host));
  }
  return hostfile;
}

bool LooksLikeYaml(absl::string_view path, absl::string_view text) {
  if (absl::EndsWith(path, ".yaml") || absl::EndsWith(path, ".yml")) return true;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    return absl::StartsWith(line, "hosts:");
  }
  return false;
}

}  // namespace

absl::StatusOr<Hostfile> ParseHostfile(absl::string_view path, absl::string_view text) {
  if (absl::Status s = dsconfig::CheckInputText(path, text, "hostfile"); !s.ok()) return s;
  return LooksLikeYaml(path, text) ? ParseYaml(path, text) : ParseText(path, text);
}

absl::StatusOr<Hostfile> LoadHostfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("hostfile ", path,
                     " does not exist or cannot be read. Fix: pass --hostfile with an "
                     "existing file, or omit it to run on this machine alone"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseHostfile(path, buffer.str());
}

bool IsUnixSocketAddress(absl::string_view address) { return absl::StartsWith(address, "unix:"); }

bool IsLocalAddress(absl::string_view address) {
  if (address == "localhost" || address == "::1" || absl::StartsWith(address, "127.") ||
      IsUnixSocketAddress(address)) {
    return true;
  }
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return false;
  absl::string_view self(name);
  return address == self || absl::StartsWith(self, absl::StrCat(address, "."));
}

}  // namespace zerorun::launcher
