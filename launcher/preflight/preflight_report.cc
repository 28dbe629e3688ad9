// Pre-flight output: the human table and the --json object (schema_version 1).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/version.h"
#include "google/protobuf/util/json_util.h"
#include "preflight/check_status.h"
#include "preflight/preflight.h"

namespace zerorun::launcher {
namespace {

using json = nlohmann::json;

const char* StatusName(CheckStatus status) {
  switch (status) {
    case kOk:
      return "OK";
    case kWarn:
      return "WARN";
    case kCritical:
      return "CRITICAL";
    default:
      return "UNKNOWN";
  }
}

std::string Pad(const std::string& text, size_t width) {
  return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

}  // namespace

std::string FormatTable(const PreflightReport& report) {
  size_t node_width = 4, check_width = 5;
  for (const v1::Check& row : report.checks) {
    node_width = std::max(node_width, row.node().size());
    check_width = std::max(check_width, row.check().size());
  }
  const std::string indent(node_width + check_width + 10 + 6, ' ');
  std::string out = absl::StrCat(Pad("NODE", node_width), "  ", Pad("CHECK", check_width), "  ",
                                 Pad("STATUS", 8), "  DETAIL\n");
  int counts[4] = {0, 0, 0, 0};
  for (const v1::Check& row : report.checks) {
    ++counts[std::clamp<int>(row.status(), 0, 3)];
    std::vector<std::string> lines = absl::StrSplit(row.detail(), '\n');
    absl::StrAppend(&out, Pad(row.node(), node_width), "  ", Pad(row.check(), check_width), "  ",
                    Pad(StatusName(row.status()), 8), "  ", lines[0], "\n");
    for (size_t i = 1; i < lines.size(); ++i) absl::StrAppend(&out, indent, lines[i], "\n");
  }
  absl::StrAppend(&out, "\npreflight: ", report.ok() ? "OK" : "FAILED", " (exit ", report.exit_code,
                  "): ", counts[0], " OK, ", counts[1], " WARN, ", counts[2], " CRITICAL, ",
                  counts[3], " UNKNOWN; ", report.hosts.size(), " node(s), ", report.world_size,
                  " rank(s)", report.ok() ? "" : "; nothing was started", "\n");
  return out;
}

json ReportJson(const PreflightReport& report) {
  json out;
  out["schema_version"] = 1;
  out["ok"] = report.ok();
  out["exit_code"] = report.exit_code;
  out["zerorun_version"] = ZR_VERSION;
  out["deepspeed_semantics"] = ZR_DEEPSPEED_SEMANTICS;
  out["hostfile"] = report.hostfile_path;
  out["config"] = report.config_path;
  out["world_size"] = report.world_size;
  out["hosts"] = json::array();
  for (const Host& host : report.hosts) {
    out["hosts"].push_back({{"name", host.name},
                            {"address", host.address},
                            {"agent_port", host.agent_port},
                            {"slots", host.slots}});
  }
  json batch = {{"train_batch_size", nullptr},
                {"train_micro_batch_size_per_gpu", nullptr},
                {"gradient_accumulation_steps", nullptr}};
  if (report.batch.has_value()) {
    batch["train_batch_size"] = report.batch->train_batch_size;
    batch["train_micro_batch_size_per_gpu"] = report.batch->micro_batch_per_gpu;
    batch["gradient_accumulation_steps"] = report.batch->gradient_accumulation_steps;
  }
  out["batch"] = batch;
  out["auto"] = json::array();
  for (const AutoValue& v : report.autos) {
    out["auto"].push_back(
        {{"key", v.key}, {"resolved", v.resolved}, {"value", v.value}, {"source", v.source}});
  }
  out["checks"] = json::array();
  for (const v1::Check& row : report.checks) {
    out["checks"].push_back({{"node", row.node()},
                             {"check", row.check()},
                             {"status", StatusName(row.status())},
                             {"detail", row.detail()}});
  }
  out["nodes"] = json::array();
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  for (const v1::ProbeReply& probe : report.probes) {
    v1::ProbeReply facts = probe;
    facts.clear_checks();  // Already in "checks".
    std::string text;
    if (google::protobuf::util::MessageToJsonString(facts, &text, options).ok()) {
      out["nodes"].push_back(json::parse(text, nullptr, false));
    }
  }
  return out;
}

}  // namespace zerorun::launcher
