// Pre-flight's rows over every node's probe reply, and the runtime's rows (node_rows.h).
#include "preflight/node_rows.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/version.h"
#include "dsconfig/runtime_support.h"
#include "inputs/train_command.h"

namespace zerorun::launcher {

void AddCrossNodeRows(const PreflightOptions& opt, const std::vector<v1::ProbeReply>& probes,
                      std::vector<v1::Check>* rows) {
  if (probes.empty()) return;
  std::set<std::string> hashes, scripts, models, versions;
  for (const v1::ProbeReply& reply : probes) {
    versions.insert(reply.zerorun_version());
    if (!reply.train_bin_sha256().empty()) hashes.insert(reply.train_bin_sha256());
    if (!reply.train_script_sha256().empty()) scripts.insert(reply.train_script_sha256());
    if (opt.device == v1::DEVICE_GPU && reply.gpus_size() > 0) models.insert(reply.gpus(0).name());
  }
  if (hashes.size() > 1) {
    AddRow(rows, "-", "train_bin", kCritical,
           "train_bin differs between nodes (sha256 mismatch). Fix: deploy the same build "
           "everywhere",
           kExitUnavailable);
  }
  if (scripts.size() > 1) {
    AddRow(rows, "-", "train_bin", kCritical,
           absl::StrCat(opt.command.script,
                        " differs between nodes (sha256 mismatch). Fix: deploy the same code "
                        "everywhere (a shared filesystem or the same checkout)"),
           kExitUnavailable);
  }
  if (versions.size() > 1 || *versions.begin() != ZR_VERSION) {
    AddRow(rows, "-", "version", kCritical,
           absl::StrCat("zerorun versions differ: launcher ", ZR_VERSION, ", agents ",
                        absl::StrJoin(versions, ", "), ". Fix: install the same build everywhere"),
           kExitUnavailable);
  }
  if (models.size() > 1) {
    AddRow(rows, "-", "gpu_model", kWarn,
           absl::StrCat("GPU models differ between nodes: ", absl::StrJoin(models, ", ")));
  }
}

void AddRuntimeRows(const PreflightOptions& opt, const PreflightReport& report,
                    std::vector<v1::Check>* rows) {
  if (report.effective_config.is_null()) return;
  const bool links =
      std::any_of(report.probes.begin(), report.probes.end(),
                  [](const v1::ProbeReply& reply) { return reply.train_bin_links_libzerorun(); });
  const bool engine = opt.engine == kEngineZerorun;
  if (engine) {
    if (opt.device == v1::DEVICE_GPU) {
      AddRow(rows, "-", "engine", kCritical,
             "--engine zerorun runs CPU ranks for now (the GPU backend is issue 30). Fix: "
             "--device cpu, or drop --engine zerorun to run DeepSpeed's engine",
             kExitConfig);
    } else {
      AddRow(rows, "-", "engine", kOk,
             "zerorun: the ranks' `import deepspeed` is zerorun's DeepSpeed-compatible engine "
             "(zerorun.torch on libzerorun; rows \"runtime\" say where it differs from "
             "DeepSpeed's)");
    }
  }
  if (!links && !engine) return;
  for (const AutoValue& v : report.autos) {  // InitFromEnv refuses what is still "auto".
    if (!links) break;                       // HF Trainer and Accelerate fill them in the ranks.
    if (v.resolved) continue;
    AddRow(rows, "-", "runtime", kCritical,
           absl::StrCat("libzerorun: ", v.key,
                        " is \"auto\" and unresolved: every rank would "
                        "refuse it. Fix: ",
                        v.source),
           kExitConfig);
  }
  for (const Finding& f : dsconfig::RuntimeSupport(report.effective_config)) {
    AddRow(rows, "-", f.check, StatusOf(f), absl::StrCat("libzerorun: ", f.detail), f.exit_code);
  }
}

}  // namespace zerorun::launcher
