// RunPreflight: hostfile -> filter -> config -> "auto" -> batch -> estimate -> node probes.
#include "preflight/preflight.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/version.h"
#include "ckpt/manifest.h"
#include "dsconfig/config_json.h"
#include "dsconfig/ds_config.h"
#include "dsconfig/effective.h"
#include "preflight/check_status.h"
#include "preflight/estimate.h"
#include "preflight/node_rows.h"
#include "preflight/stage_advice.h"
#include "security/local_cred.h"

namespace zerorun::launcher {
namespace {

using json = nlohmann::json;
using dsconfig::ConfigSummary;
using dsconfig::FindArg;
using dsconfig::JsonDocument;
using dsconfig::LoadConfigJson;
using dsconfig::Lookup;
using dsconfig::Summarize;

class Preflight {
 public:
  Preflight(const PreflightOptions& options, AgentPool& agents) : opt_(options), agents_(agents) {}

  PreflightReport Run() {
    ReadHosts();
    ReadConfig();
    EnvRow();
    CheckBatch();
    Estimate();
    ProbeNodes();
    report_.exit_code = ExitCodeFor(report_.checks);
    return std::move(report_);
  }

 private:
  void Row(const std::string& node, const std::string& check, CheckStatus status,
           const std::string& detail, int exit_code = kExitOk) {
    AddRow(&report_.checks, node, check, status, detail, exit_code);
  }

  static int ExitFor(const absl::Status& status) {
    switch (status.code()) {
      case absl::StatusCode::kNotFound:
        return kExitNoInput;
      case absl::StatusCode::kFailedPrecondition:
        return kExitConfig;
      default:
        return kExitDataErr;
    }
  }

  std::vector<int> Range(int n) {
    std::vector<int> ids(std::max(0, n));
    for (int i = 0; i < n; ++i) ids[i] = i;
    return ids;
  }

  void ReadHosts() {
    Hostfile hostfile;
    FilterOptions filter = opt_.filter;
    const std::string path = HostfilePath(opt_);
    if (!path.empty()) {
      absl::StatusOr<Hostfile> loaded = LoadHostfile(path);
      if (!loaded.ok()) {
        Row("-", "hostfile", kCritical, std::string(loaded.status().message()),
            ExitFor(loaded.status()));
        return;
      }
      hostfile = *std::move(loaded);
      report_.hostfile_path = path;
    } else if (opt_.device == v1::DEVICE_CPU) {
      hostfile = LocalHostfile(Range(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))));
    } else {
      const int gpus = agents_.local_agent().CountGpus();
      if (gpus == 0) {
        Row("localhost", "hostfile", kCritical,
            "no hostfile and no GPU on this machine: Unable to proceed, no GPU resources "
            "available. Fix: pass --hostfile, or run a CPU job with --device cpu",
            kExitUnavailable);
        return;
      }
      hostfile = LocalHostfile(Range(gpus));
      std::string note;
      if (absl::Status s = ApplyVisibleDevices(opt_.cuda_visible_devices, &filter, &note);
          !s.ok()) {
        Row("-", "filter", kCritical, std::string(s.message()), kExitUsage);
        return;
      }
      if (!note.empty()) Row("-", "filter", kOk, note);
    }
    for (const std::string& warning : hostfile.warnings) Row("-", "hostfile", kWarn, warning);
    absl::StatusOr<ResourcePlan> plan = ApplyFilter(hostfile, filter);
    if (!plan.ok()) {
      Row("-", "filter", kCritical, std::string(plan.status().message()),
          plan.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitConfig);
      return;
    }
    for (const std::string& warning : plan->warnings) Row("-", "filter", kWarn, warning);
    report_.hosts = plan->hosts;
    if (!opt_.agent_endpoints.empty()) {
      for (Host& host : report_.hosts) {
        auto it = opt_.agent_endpoints.find(host.name);
        if (it == opt_.agent_endpoints.end()) {
          Row(host.name, "hostfile", kCritical,
              "no agent was started for this host (did the hostfile change while zerorun started "
              "them?). Fix: run again",
              kExitUnavailable);
          report_.hosts.clear();
          return;
        }
        host.address = it->second.address;
        host.agent_port = it->second.port;
      }
    }
    report_.world_size = plan->WorldSize();
    std::vector<std::string> parts;
    for (const Host& host : report_.hosts) {
      parts.push_back(absl::StrCat(host.name, "[", absl::StrJoin(host.slots, ","), "]"));
    }
    Row("-", "hostfile", kOk,
        absl::StrCat(path.empty() ? "this machine alone (no hostfile)" : path, ": ",
                     report_.hosts.size(), " node(s), ", report_.world_size,
                     " rank(s): ", absl::StrJoin(parts, " ")));
  }

  std::string ConfigPath() const {
    if (!opt_.config.empty()) return opt_.config;
    for (const char* name : {"deepspeed_config", "deepspeed"}) {
      if (auto path = FindArg(opt_.command.tail, name)) return *path;
    }
    return "";
  }

  void ReadConfig() {
    report_.config_path = ConfigPath();
    if (report_.config_path.empty()) {
      Row("-", "config", kCritical,
          "no DeepSpeed config. Fix: pass --config ds_config.json (or --deepspeed_config / "
          "--deepspeed in the train command)",
          kExitUsage);
      return;
    }
    absl::StatusOr<JsonDocument> doc = LoadConfigJson(report_.config_path);
    if (!doc.ok()) {
      Row("-", "config", kCritical, std::string(doc.status().message()), ExitFor(doc.status()));
      return;
    }
    AutoInputs inputs = opt_.autos;
    inputs.train_args = opt_.command.tail;
    inputs.world_size = report_.world_size;
    resolution_ = dsconfig::Resolve(*doc, inputs);
    for (const Finding& f : resolution_.findings) {
      Row("-", f.check, StatusOf(f), f.detail, f.exit_code);
    }
    if (resolution_.valid()) {
      const ConfigSummary written = Summarize(doc->root);
      Row("-", "config", kOk,
          absl::StrCat(report_.config_path, ": ZeRO stage ", written.stage,
                       written.bf16 ? ", bf16" : (written.fp16 ? ", fp16" : ""),
                       ", offload optimizer=", written.offload_optimizer,
                       " param=", written.offload_param, " (DeepSpeed ", ZR_DEEPSPEED_SEMANTICS,
                       " semantics)"));
    }
    report_.autos = resolution_.autos;
    for (const AutoValue& v : report_.autos) {
      const std::string where = doc->Where(v.key);
      if (v.resolved) {
        Row("-", "auto", kOk,
            absl::StrCat(where, ": ", v.key, " = ", dsconfig::Dump(v.value), " (from ", v.source,
                         ")"));
      } else {
        Row("-", "auto", opt_.strict ? kCritical : kWarn,
            absl::StrCat(where, ": ", v.key, " is \"auto\" and unresolved: ", v.source,
                         opt_.strict ? " (--strict)" : ""),
            kExitConfig);
      }
    }
    // HF Trainer requires --output_dir: with it the command is surely HF's, and a mismatch would
    // stop every rank at start-up (CRITICAL); without it, a program that merely takes
    // --deepspeed PATH may not check (WARN).
    const bool surely_hf = FindArg(opt_.command.tail, "output_dir").has_value();
    for (const dsconfig::HfMismatch& m : dsconfig::FindHfMismatches(doc->root, inputs)) {
      Row("-", "auto", surely_hf ? kCritical : kWarn,
          absl::StrCat(doc->Where(m.key), ": ", m.key, " = ", dsconfig::Dump(m.written),
                       " but HF Trainer computes ", dsconfig::Dump(m.hf), " (from ", m.source, ")",
                       surely_hf ? " and would" : "; if this is HF Trainer, it would",
                       " stop every rank at start-up (\"mismatch TrainingArguments values\"). "
                       "Fix: write \"auto\", or ",
                       dsconfig::Dump(m.hf), ", or change the train command"),
          kExitConfig);
    }
    report_.effective_config = resolution_.effective;
    summary_ = Summarize(report_.effective_config);
  }

  // The forwarded environment by name and source (values may be secrets: never shown).
  void EnvRow() {
    const ForwardedEnv& env = opt_.env;
    if (env.vars.empty() && env.files.empty()) return;
    std::string detail = absl::StrCat(env.vars.size(), " variable(s) to every rank on every node");
    if (!env.files.empty())
      absl::StrAppend(&detail, " (read ", absl::StrJoin(env.files, ", "), ")");
    std::string names;
    for (const auto& [key, source] : env.sources) {
      absl::StrAppend(&names, names.empty() ? ": " : ", ", key, " (", source, ")");
    }
    Row("-", "env", kOk, detail + names);
  }

  void CheckBatch() {
    if (report_.effective_config.is_null()) return;
    const std::vector<std::string>& unresolved = resolution_.unresolved_batch;
    if (!unresolved.empty()) {
      std::string hint;
      for (const AutoValue& v : report_.autos) {
        if (std::find(unresolved.begin(), unresolved.end(), v.key) != unresolved.end()) {
          absl::StrAppend(&hint, hint.empty() ? "" : "; ", v.key, ": ", v.source);
        }
      }
      Row("-", "batch", kUnknown,
          absl::StrCat("cannot check the batch: ", absl::StrJoin(unresolved, ", "),
                       " unresolved. Fix: ", hint.empty() ? "give integers" : hint));
      return;
    }
    if (report_.world_size == 0) {
      Row("-", "batch", kUnknown, "world size unknown (the hostfile or filter failed)");
      return;
    }
    const absl::StatusOr<BatchTriple>& batch = *resolution_.batch;  // World size known: resolved.
    if (!batch.ok()) {
      Row("-", "batch", kCritical, std::string(batch.status().message()), kExitConfig);
      return;
    }
    report_.batch = *batch;  // Written into the effective config: what the ranks train with.
    Row("-", "batch", kOk,
        absl::StrCat("train_batch_size ", batch->train_batch_size, " = micro batch ",
                     batch->micro_batch_per_gpu, " x accumulation ",
                     batch->gradient_accumulation_steps, " x ", report_.world_size, " ranks"));
  }

  // The model states' formula, plus the NVMe optimizer store's read-ahead ring in host memory.
  MemoryNeed NeedFor(const Host& host) const {
    const bool cpu_job = opt_.device == v1::DEVICE_CPU;
    const int local = static_cast<int>(host.slots.size());
    const double largest = opt_.largest_layer_params.value_or(0);
    MemoryNeed need = ModelStateNeed(summary_.stage, summary_.offload_optimizer,
                                     summary_.offload_param, cpu_job, *opt_.params, largest, local,
                                     report_.world_size, static_cast<int>(report_.hosts.size()));
    const double ring = NvmeRingBytes(*opt_.params, largest, summary_, local, report_.world_size);
    if (ring > 0) {
      need.host_bytes_per_node += ring;
      absl::StrAppend(&need.formula, "; + ", NvmeRingFormula(summary_, ring));
      if (cpu_job) {  // Our formula counts the optimizer state in host memory: it is on NVMe.
        need.host_bytes_per_node -=
            NvmeOptimizerBytes(*opt_.params, summary_, local, report_.world_size);
        absl::StrAppend(&need.formula, "; - the optimizer state on NVMe");
      }
    }
    return need;
  }

  void Estimate() {
    if (!opt_.params.has_value() || report_.hosts.empty() || report_.effective_config.is_null()) {
      return;
    }
    const MemoryNeed need = NeedFor(report_.hosts.front());
    Row("-", "estimate", kOk,
        absl::StrCat("model states: ",
                     opt_.device == v1::DEVICE_CPU
                         ? ""
                         : absl::StrCat(HumanBytes(need.gpu_bytes_per_gpu), " per GPU, "),
                     HumanBytes(need.host_bytes_per_node), " host memory on ",
                     report_.hosts.front().name, " (", need.formula, ")"));
  }

  void AddPath(v1::ProbeRequest* request, const std::string& key, const std::string& path,
               bool nvme, const Host& host) {
    v1::PathRequirement* req = request->add_paths();
    req->set_key(key);
    req->set_path(path);
    req->set_must_exist(nvme);
    req->set_needs_o_direct(nvme);
    if (!opt_.params.has_value()) return;
    const int local = static_cast<int>(host.slots.size());
    if (nvme) {
      const bool params_on_nvme = summary_.offload_param == "nvme";
      req->set_required_bytes(
          static_cast<uint64_t>(NvmeSwapBytes(*opt_.params, summary_, local, report_.world_size)));
      req->set_size_formula(absl::StrCat(local, " local ranks x max(DeepSpeed's 12P",
                                         params_on_nvme ? " + 2P" : "", ", libzerorun's layout) / ",
                                         report_.world_size, " ranks x 1.2"));
    } else {
      // The checkpoint writer's own formula (zerorun's format: fp32 masters, m, v).
      req->set_required_bytes(ckpt::CheckpointBytesEstimate(*opt_.params));
      req->set_size_formula(
          "one zerorun checkpoint: 12P (fp32 masters, Adam m and v) x 1.1 padding + 64 KiB");
    }
  }

  void ProbeNodes() {
    std::vector<std::string> dirs = opt_.checkpoint_dirs;
    for (const char* name : {"output_dir", "save_dir", "checkpoint_dir"}) {
      if (auto dir = FindArg(opt_.command.tail, name)) dirs.push_back(*dir);
    }
    char cwd_buf[4096] = {};
    const std::string cwd = getcwd(cwd_buf, sizeof(cwd_buf)) != nullptr ? cwd_buf : "";
    std::vector<v1::ProbeRequest> requests;
    for (const Host& host : report_.hosts) {
      v1::ProbeRequest& request = requests.emplace_back();
      request.set_node(host.name);
      for (int slot : host.slots) request.add_slots(slot);
      request.set_device(opt_.device);
      request.set_train_bin(opt_.command.program);
      request.set_train_script(opt_.command.script);
      request.set_train_module(opt_.command.module);
      request.set_cwd(cwd);
      if (opt_.params.has_value() && !report_.effective_config.is_null()) {
        const MemoryNeed need = NeedFor(host);
        request.set_host_memory_required_bytes(static_cast<uint64_t>(need.host_bytes_per_node));
        request.set_gpu_memory_required_bytes(static_cast<uint64_t>(need.gpu_bytes_per_gpu));
      }
      std::vector<std::pair<std::string, std::string>> nvme;
      if (summary_.optimizer_nvme_path) {
        nvme.emplace_back("offload_optimizer.nvme_path", *summary_.optimizer_nvme_path);
      } else if (summary_.optimizer_nvme_path_libzerorun) {
        // Checked too; its rows count only for a libzerorun train_bin (DeepSpeed ignores it).
        nvme.emplace_back("offload_optimizer.nvme_path", *summary_.optimizer_nvme_path_libzerorun);
      }
      if (summary_.param_nvme_path) {
        nvme.emplace_back("offload_param.nvme_path", *summary_.param_nvme_path);
      }
      auto per_host = host.paths.find("nvme_path");
      for (auto& [key, path] : nvme) {
        if (per_host != host.paths.end()) path = per_host->second;
        AddPath(&request, key, path, true, host);
      }
      for (const std::string& dir : dirs) AddPath(&request, "checkpoint_dir", dir, false, host);
    }
    // Every node at once: a slow or dead node costs one timeout, not one per node.
    std::vector<absl::StatusOr<v1::ProbeReply>> replies(requests.size(),
                                                        absl::UnknownError("not probed"));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back(
          [&, i] { replies[i] = agents_.For(report_.hosts[i])->Probe(requests[i]); });
    }
    for (std::thread& t : threads) t.join();
    for (size_t i = 0; i < replies.size(); ++i) {
      const Host& host = report_.hosts[i];
      if (!replies[i].ok()) {
        const absl::Status& s = replies[i].status();
        const bool auth = s.code() == absl::StatusCode::kUnauthenticated;
        const std::string lower = absl::AsciiStrToLower(s.message());
        const bool tls = absl::StrContains(lower, "ssl") || absl::StrContains(lower, "handshake") ||
                         absl::StrContains(lower, "certificate");
        const std::string where = absl::StrCat("agent at ", AgentTarget(host));
        std::string detail;
        if (tls) {
          detail =
              absl::StrCat("TLS with the ", where, " failed: ", s.message(),
                           ". Fix: a --tls-dir of this cluster's CA, not expired, and a node "
                           "certificate there that names ",
                           host.address, " (zerorun cluster issue DIR --node ", host.address, ")");
        } else if (auth) {
          detail = absl::StrCat(where,
                                " refused the credentials (secret or certificate): ", s.message());
        } else if (IsUnixSocketAddress(host.address)) {
          detail = absl::StrCat(where, " unreachable: ", s.message(),
                                ". Fix: start zerorund on this machine with --unix-socket ",
                                UnixSocketPath(host.address),
                                " (the default is STATE_DIR/zerorund.sock)");
        } else {
          detail = absl::StrCat(where, " unreachable: ", s.message(),
                                ". Fix: start it there with 'zerorund --listen ", host.address, ":",
                                host.agent_port, "' (with --tls-dir where it serves mTLS)");
        }
        Row(host.name, "agent", kCritical, detail, auth || tls ? kExitNoPerm : kExitUnavailable);
        continue;
      }
      for (const v1::Check& row : replies[i]->checks()) {
        const bool ignored_by_deepspeed = !summary_.optimizer_nvme_path &&
                                          row.check() == "offload_optimizer.nvme_path" &&
                                          !replies[i]->train_bin_links_libzerorun();
        if (!ignored_by_deepspeed) report_.checks.push_back(row);
      }
      probed_hosts_.push_back(report_.hosts[i]);
      report_.probes.push_back(*std::move(replies[i]));
    }
    CrossNode();
    Stage3OnPcie();
  }

  // Stage 3 all-gathers the parameters in forward and backward (1.5x stage 2's bytes); on GPUs
  // joined only by PCIe users report > 20% fewer tokens/s than stage 2. Worth it only when
  // stage 2 does not fit.
  void Stage3OnPcie() {
    if (summary_.stage != 3 || opt_.device != v1::DEVICE_GPU || !opt_.params.has_value()) return;
    for (size_t i = 0; i < report_.probes.size(); ++i) {
      const v1::ProbeReply& reply = report_.probes[i];
      const Host& host = probed_hosts_[i];
      std::string matrix;
      if (!PcieOnly(reply, host.slots, &matrix)) continue;
      double memory = 0;
      for (int slot : host.slots) {
        if (slot < reply.gpus_size()) {
          const double m = static_cast<double>(reply.gpus(slot).memory_total_bytes());
          memory = memory == 0 ? m : std::min(memory, m);
        }
      }
      const MemoryNeed stage2 =
          ModelStateNeed(2, summary_.offload_optimizer, "none", false, *opt_.params,
                         opt_.largest_layer_params.value_or(0), static_cast<int>(host.slots.size()),
                         report_.world_size, static_cast<int>(report_.hosts.size()));
      if (memory <= 0 || stage2.gpu_bytes_per_gpu > memory) continue;
      Row(host.name, "zero_stage", kWarn,
          absl::StrCat("ZeRO stage 3 on GPUs linked only by PCIe (", matrix,
                       ") while stage 2 "
                       "fits: stage 2 needs ",
                       HumanBytes(stage2.gpu_bytes_per_gpu), " per GPU of ", HumanBytes(memory),
                       ". Stage 3 all-gathers the parameters in forward and "
                       "backward (1.5x the bytes of stage 2); on PCIe-only nodes users report "
                       "over 20% fewer tokens/s. Fix: \"stage\": 2 (`zerorun estimate` compares "
                       "the stages)"));
    }
  }

  // Every node must run the same binary and the same GPU model; then the runtime's rows.
  void CrossNode() {
    AddCrossNodeRows(opt_, report_.probes, &report_.checks);
    AddRuntimeRows(opt_, report_, &report_.checks);
  }

  std::vector<Host> probed_hosts_;  // The host of each report_.probes entry.
  const PreflightOptions& opt_;
  AgentPool& agents_;
  PreflightReport report_;
  ConfigSummary summary_;
  dsconfig::Resolution resolution_;  // The config document resolved for this job (ReadConfig).
};

}  // namespace

int ExitCodeFor(const std::vector<v1::Check>& checks) {
  for (int code :
       {kExitUsage, kExitNoInput, kExitDataErr, kExitConfig, kExitNoPerm, kExitUnavailable}) {
    for (const v1::Check& row : checks) {
      if (row.status() == kCritical && row.exit_code() == code) return code;
    }
  }
  for (const v1::Check& row : checks) {
    if (row.status() == kCritical) return kExitUnavailable;
  }
  return kExitOk;
}

PreflightReport RunPreflight(const PreflightOptions& options, AgentPool& agents) {
  return Preflight(options, agents).Run();
}

}  // namespace zerorun::launcher
