// Node-local pre-flight: GPU count/model/topology, host and GPU memory, paths, train_bin.
#include "node_agent.h"

#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/exit_codes.h"
#include "base/version.h"
#include "node_probe.h"
#include "nvml.h"

namespace zerorun::worker {
namespace {

// "1.50 GiB", or "12.3 MiB" below 1 GiB.
std::string GiB(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b < 1024.0 * 1024.0 * 1024.0) return absl::StrFormat("%.1f MiB", b / (1024.0 * 1024.0));
  return absl::StrFormat("%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
}

class Judge {
 public:
  Judge(const v1::ProbeRequest& request, v1::ProbeReply* reply)
      : request_(request), reply_(reply) {}

  void Add(const std::string& check, v1::CheckStatus status, const std::string& detail,
           int exit_code = kExitUnavailable) {
    v1::Check* row = reply_->add_checks();
    row->set_node(request_.node());
    row->set_check(check);
    row->set_status(status);
    row->set_detail(detail);
    row->set_exit_code(status == v1::CHECK_STATUS_CRITICAL ? exit_code : kExitOk);
  }

  void Gpus(const GpuFacts& facts) {
    const auto& slots = request_.slots();
    if (request_.device() == v1::DEVICE_CPU) {
      const int cores = reply_->cpu_count();
      if (slots.size() > cores) {
        Add("cpu_slots", v1::CHECK_STATUS_WARN,
            absl::StrCat(slots.size(), " CPU ranks on ", cores,
                         " cores: ranks will share cores (slower, still correct). Fix: lower "
                         "slots= or --num_gpus"));
      } else {
        Add("cpu_slots", v1::CHECK_STATUS_OK,
            absl::StrCat("CPU job: ", slots.size(), " rank(s) on ", cores, " cores; ",
                         facts.gpus.size(), " GPU(s) present, none needed"));
      }
      return;
    }
    const int count = static_cast<int>(facts.gpus.size());
    if (count == 0) {
      Add("gpu_count", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat("no GPU on this node (", facts.note, "); the job needs ", slots.size(),
                       " GPU(s). Fix: run a CPU job with --device cpu, or install the NVIDIA "
                       "driver"));
      return;
    }
    std::vector<int> missing;
    for (int slot : slots) {
      if (slot >= count) missing.push_back(slot);
    }
    if (!missing.empty()) {
      Add("gpu_count", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat("slot(s) ", absl::StrJoin(missing, ","), " requested but the node has ",
                       count, " GPU(s) (0-", count - 1,
                       "). Fix: lower slots= in the hostfile or --include only existing GPUs"));
      return;
    }
    Add("gpu_count", v1::CHECK_STATUS_OK,
        absl::StrCat(count, " GPU(s), using slot(s) ", absl::StrJoin(slots, ",")));
    std::set<std::string> models;
    std::vector<std::string> names;
    for (int slot : slots) {
      const v1::GpuInfo& gpu = facts.gpus[slot];
      models.insert(gpu.name());
      names.push_back(absl::StrCat(slot, ":", gpu.name(), " ", GiB(gpu.memory_total_bytes())));
    }
    Add("gpu_model", models.size() == 1 ? v1::CHECK_STATUS_OK : v1::CHECK_STATUS_WARN,
        absl::StrCat(models.size() == 1 ? "" : "mixed GPU models on one node: ",
                     absl::StrJoin(names, "; "), "; driver ", facts.driver_version));
    Topology(facts);
  }

  void Topology(const GpuFacts& facts) {
    const auto& slots = request_.slots();
    if (slots.size() < 2 || facts.topology.empty()) return;
    std::vector<std::string> rows;
    bool crosses_sockets = false;
    for (int a : slots) {
      std::vector<std::string> cells;
      for (int b : slots) {
        const std::string& link = facts.topology[a].links(b);
        crosses_sockets |= link == "SYS";
        cells.push_back(link);
      }
      rows.push_back(absl::StrCat("GPU", a, "[", absl::StrJoin(cells, " "), "]"));
    }
    Add("gpu_topology", crosses_sockets ? v1::CHECK_STATUS_WARN : v1::CHECK_STATUS_OK,
        absl::StrCat(absl::StrJoin(rows, " "),
                     crosses_sockets ? " (SYS: some GPU pairs cross the CPU interconnect; "
                                       "collectives between them are slower)"
                                     : ""));
  }

  void Memory() {
    const uint64_t need = request_.host_memory_required_bytes();
    const uint64_t have = reply_->host_memory_available_bytes();
    const std::string found =
        absl::StrCat(GiB(have), " available of ", GiB(reply_->host_memory_total_bytes()));
    if (need == 0) {
      Add("host_memory", v1::CHECK_STATUS_UNKNOWN,
          absl::StrCat(found, "; model size unknown. Fix: pass --params N for an estimate"));
    } else if (have < need) {
      Add("host_memory", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat("needs ", GiB(need), ", ", found,
                       ". Fix: use a higher ZeRO stage, fewer ranks per node, or offload less"));
    } else {
      Add("host_memory", have < need * 5 / 4 ? v1::CHECK_STATUS_WARN : v1::CHECK_STATUS_OK,
          absl::StrCat("needs ", GiB(need), ", ", found,
                       have < need * 5 / 4 ? " (under 25% headroom)" : ""));
    }
    if (request_.device() != v1::DEVICE_GPU || reply_->gpus().empty()) return;
    const uint64_t per_gpu = request_.gpu_memory_required_bytes();
    if (per_gpu == 0) {
      Add("gpu_memory", v1::CHECK_STATUS_UNKNOWN,
          "model size unknown. Fix: pass --params N for an estimate");
      return;
    }
    std::vector<std::string> short_gpus;
    for (int slot : request_.slots()) {
      if (slot >= reply_->gpus_size()) continue;
      const uint64_t total = reply_->gpus(slot).memory_total_bytes();
      if (total < per_gpu) short_gpus.push_back(absl::StrCat(slot, " (", GiB(total), ")"));
    }
    if (short_gpus.empty()) {
      Add("gpu_memory", v1::CHECK_STATUS_OK,
          absl::StrCat("model states need ", GiB(per_gpu), " per GPU"));
    } else {
      Add("gpu_memory", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat("model states need ", GiB(per_gpu), " per GPU; too small: GPU ",
                       absl::StrJoin(short_gpus, ", "),
                       ". Fix: a higher ZeRO stage, CPU offload, or more GPUs"));
    }
  }

  void Path(const v1::PathRequirement& req) {
    const PathFacts facts = ProbePath(req.path(), true);
    const std::string name = req.key();
    const std::string where = absl::StrCat(req.key(), "=", req.path());
    if (!facts.exists) {
      if (req.must_exist()) {
        Add(name, v1::CHECK_STATUS_CRITICAL,
            absl::StrCat(where,
                         " does not exist (zerorun never creates it; DeepSpeed would "
                         "create it silently). Fix: create it on this node or correct the "
                         "path"),
            kExitNoInput);
      } else {
        Add(name, v1::CHECK_STATUS_OK,
            absl::StrCat(where, " does not exist yet (the training program creates it); ",
                         GiB(facts.free_bytes), " free on its filesystem"));
      }
      return;
    }
    if (!facts.is_directory) {
      Add(name, v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(where, " is not a directory. Fix: point it at a directory"));
      return;
    }
    if (!facts.writable) {
      Add(name, v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(where, " is not writable (", facts.error,
                       "). Fix: chown/chmod it for the job's user"));
      return;
    }
    if (req.needs_o_direct() && !facts.o_direct) {
      Add(name, v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(where, " is on ", facts.fs_type.empty() ? "a filesystem" : facts.fs_type,
                       ", which does not accept O_DIRECT (", facts.error,
                       "); NVMe swap needs it. Fix: use a directory on an ext4/xfs NVMe mount"));
      return;
    }
    const bool ram = req.needs_o_direct() && (facts.fs_type == "tmpfs" || facts.fs_type == "ramfs");
    const std::string fs = absl::StrCat(facts.fs_type, req.needs_o_direct() ? ", O_DIRECT ok" : "");
    const uint64_t need = req.required_bytes();
    if (ram && facts.free_bytes >= need) {  // Too small is worse, and said below.
      Add(name, v1::CHECK_STATUS_WARN,
          absl::StrCat(where, " is on ", facts.fs_type,
                       " (RAM): swapping there saves no host memory. Fix: use a directory on an "
                       "NVMe mount"));
      return;
    }
    if (need == 0) {
      Add(name, req.needs_o_direct() ? v1::CHECK_STATUS_UNKNOWN : v1::CHECK_STATUS_OK,
          absl::StrCat(where, " writable (", fs, "), ", GiB(facts.free_bytes), " free",
                       req.needs_o_direct() ? "; swap size unknown. Fix: pass --params N" : ""));
    } else if (facts.free_bytes < need) {
      Add(name, v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(where, ": ", GiB(facts.free_bytes), " free, needs ", GiB(need), " (",
                       req.size_formula(), "). Fix: free space or use another directory"));
    } else {
      const bool tight = facts.free_bytes < need + need / 2;
      Add(name, tight ? v1::CHECK_STATUS_WARN : v1::CHECK_STATUS_OK,
          absl::StrCat(where, " (", fs, "): ", GiB(facts.free_bytes), " free, needs ", GiB(need),
                       " (", req.size_formula(), ")", tight ? "; under 1.5x headroom" : ""));
    }
  }

  void TrainBin() {
    if (request_.train_bin().empty()) return;
    const ExecutableFacts facts = ProbeExecutable(request_.train_bin());
    const bool python = !request_.train_script().empty() || !request_.train_module().empty();
    if (facts.resolved_path.empty()) {
      Add("train_bin", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(request_.train_bin(), ": ", facts.error, ". Fix: build it or give its path"),
          kExitNoInput);
    } else if (!facts.executable) {
      Add("train_bin", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(facts.resolved_path, " is not executable. Fix: chmod +x ",
                       facts.resolved_path));
    } else if (python) {
      TrainScript(facts);
    } else {
      reply_->set_train_bin_sha256(facts.sha256);
      reply_->set_train_bin_links_libzerorun(facts.links_libzerorun);
      Add("train_bin", v1::CHECK_STATUS_OK,
          absl::StrCat(facts.resolved_path, " sha256 ", facts.sha256.substr(0, 16)));
    }
  }

  // A Python program: the interpreter must start (and find the module), the script must exist.
  void TrainScript(const ExecutableFacts& interpreter) {
    const std::string& module = request_.train_module();
    if (const std::string why = ProbePython(interpreter.resolved_path, request_.cwd(), module);
        !why.empty()) {
      Add("train_bin", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(interpreter.resolved_path,
                       module.empty() ? "" : absl::StrCat(" -m ", module), ": ", why, ". Fix: ",
                       module.empty()
                           ? "install Python or pass --python PATH"
                           : "install the module or set PYTHONPATH (--env PYTHONPATH=...)"),
          module.empty() ? kExitUnavailable : kExitNoInput);
      return;
    }
    if (request_.train_script().empty()) {
      Add("train_bin", v1::CHECK_STATUS_OK,
          absl::StrCat(interpreter.resolved_path, " -m ", module, ": the module is found"));
      return;
    }
    std::string script = request_.train_script();
    if (script[0] != '/' && !request_.cwd().empty()) script = request_.cwd() + "/" + script;
    const ExecutableFacts facts = ProbeExecutable(script);
    if (facts.resolved_path.empty() || !facts.error.empty()) {
      Add("train_bin", v1::CHECK_STATUS_CRITICAL,
          absl::StrCat(script, ": ", facts.error.empty() ? "cannot be read" : facts.error,
                       ". Fix: give the script's path (relative to ", request_.cwd(), ")"),
          kExitNoInput);
      return;
    }
    reply_->set_train_script_sha256(facts.sha256);
    Add("train_bin", v1::CHECK_STATUS_OK,
        absl::StrCat(interpreter.resolved_path, " runs; ", script, " sha256 ",
                     facts.sha256.substr(0, 16)));
  }

 private:
  const v1::ProbeRequest& request_;
  v1::ProbeReply* reply_;
};

}  // namespace

int NodeAgent::CountGpus() const { return static_cast<int>(ProbeGpus(nvml_library_).gpus.size()); }

NodeAgent::NodeAgent(std::string nvml_library) : nvml_library_(std::move(nvml_library)) {}

v1::ProbeReply NodeAgent::Probe(const v1::ProbeRequest& request) const {
  v1::ProbeReply reply;
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  reply.set_hostname(hostname);
  reply.set_zerorun_version(ZR_VERSION);
  reply.set_cpu_count(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  if (absl::StatusOr<HostMemory> memory = ReadHostMemory(); memory.ok()) {
    reply.set_host_memory_total_bytes(memory->total_bytes);
    reply.set_host_memory_available_bytes(memory->available_bytes);
  }
  const GpuFacts gpus = ProbeGpus(nvml_library_);
  reply.set_driver_version(gpus.driver_version);
  for (const v1::GpuInfo& gpu : gpus.gpus) *reply.add_gpus() = gpu;
  for (const v1::TopologyRow& row : gpus.topology) *reply.add_topology() = row;

  Judge judge(request, &reply);
  judge.Add(
      "agent", v1::CHECK_STATUS_OK,
      absl::StrCat("host ", hostname, ", zerorun ", ZR_VERSION, ", ", reply.cpu_count(), " cores"));
  judge.Gpus(gpus);
  judge.Memory();
  for (const v1::PathRequirement& path : request.paths()) judge.Path(path);
  judge.TrainBin();
  return reply;
}

}  // namespace zerorun::worker
