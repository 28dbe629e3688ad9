// NVML via dlopen: the handful of entry points declared here with NVML's ABI, as NCCL does.
#include "nvml.h"

#include <dlfcn.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace zerorun::worker {
namespace {

using NvmlReturn = int;  // nvmlReturn_t; 0 is NVML_SUCCESS.
using NvmlDevice = void*;
constexpr int kMaxNvLinks = 18;  // NVML_NVLINK_MAX_LINKS in current headers.
constexpr int kNvLinkRemoteSwitch = 2;

struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct NvmlPciInfo {  // nvmlPciInfo_t (v3 layout).
  char bus_id_legacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pci_device_id;
  unsigned int pci_sub_system_id;
  char bus_id[32];
};

struct Nvml {
  void* handle = nullptr;
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  const char* (*error_string)(NvmlReturn) = nullptr;
  NvmlReturn (*driver_version)(char*, unsigned) = nullptr;
  NvmlReturn (*count)(unsigned*) = nullptr;
  NvmlReturn (*by_index)(unsigned, NvmlDevice*) = nullptr;
  NvmlReturn (*name)(NvmlDevice, char*, unsigned) = nullptr;
  NvmlReturn (*uuid)(NvmlDevice, char*, unsigned) = nullptr;
  NvmlReturn (*memory)(NvmlDevice, NvmlMemory*) = nullptr;
  NvmlReturn (*pci)(NvmlDevice, NvmlPciInfo*) = nullptr;
  NvmlReturn (*common_ancestor)(NvmlDevice, NvmlDevice, int*) = nullptr;
  NvmlReturn (*nvlink_state)(NvmlDevice, unsigned, int*) = nullptr;
  NvmlReturn (*nvlink_remote_pci)(NvmlDevice, unsigned, NvmlPciInfo*) = nullptr;
  NvmlReturn (*nvlink_remote_type)(NvmlDevice, unsigned, int*) = nullptr;

  ~Nvml() {
    if (handle != nullptr) dlclose(handle);
  }
};

template <typename Fn>
bool Bind(void* handle, const char* symbol, Fn* fn, bool required = true) {
  *fn = reinterpret_cast<Fn>(dlsym(handle, symbol));
  return *fn != nullptr || !required;
}

std::string PcieLevel(int level) {
  switch (level) {
    case 0:
    case 10:
      return "PIX";
    case 20:
      return "PXB";
    case 30:
      return "PHB";
    case 40:
      return "NODE";
    case 50:
      return "SYS";
    default:
      return "?";
  }
}

// NVLink cells: links from a that end on b, or on an NVSwitch when both a and b reach one.
void FillTopology(const Nvml& nvml, const std::vector<NvmlDevice>& devices, GpuFacts* facts) {
  const size_t n = devices.size();
  std::vector<std::vector<int>> direct(n, std::vector<int>(n, 0));
  std::vector<int> to_switch(n, 0);
  for (size_t a = 0; a < n && nvml.nvlink_state != nullptr; ++a) {
    for (int link = 0; link < kMaxNvLinks; ++link) {
      int active = 0;
      if (nvml.nvlink_state(devices[a], link, &active) != 0 || !active) continue;
      int type = 0;
      if (nvml.nvlink_remote_type != nullptr &&
          nvml.nvlink_remote_type(devices[a], link, &type) == 0 && type == kNvLinkRemoteSwitch) {
        ++to_switch[a];
        continue;
      }
      NvmlPciInfo remote{};
      if (nvml.nvlink_remote_pci == nullptr ||
          nvml.nvlink_remote_pci(devices[a], link, &remote) != 0) {
        continue;
      }
      for (size_t b = 0; b < n; ++b) {
        if (absl::EqualsIgnoreCase(remote.bus_id, facts->gpus[b].pci_bus_id())) ++direct[a][b];
      }
    }
  }
  for (size_t a = 0; a < n; ++a) {
    v1::TopologyRow* row = &facts->topology.emplace_back();
    for (size_t b = 0; b < n; ++b) {
      if (a == b) {
        row->add_links("X");
      } else if (direct[a][b] > 0) {
        row->add_links(absl::StrCat("NV", direct[a][b]));
      } else if (to_switch[a] > 0 && to_switch[b] > 0) {
        row->add_links(absl::StrCat("NV", std::min(to_switch[a], to_switch[b])));
      } else {
        int level = -1;
        if (nvml.common_ancestor != nullptr) {
          nvml.common_ancestor(devices[a], devices[b], &level);
        }
        row->add_links(PcieLevel(level));
      }
    }
  }
}

}  // namespace

GpuFacts ProbeGpus(const std::string& library) {
  GpuFacts facts;
  Nvml nvml;
  nvml.handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (nvml.handle == nullptr) {
    facts.note = absl::StrCat("no NVIDIA driver: cannot load ", library);
    return facts;
  }
  void* h = nvml.handle;
  const bool bound =
      Bind(h, "nvmlInit_v2", &nvml.init) && Bind(h, "nvmlShutdown", &nvml.shutdown) &&
      Bind(h, "nvmlDeviceGetCount_v2", &nvml.count) &&
      Bind(h, "nvmlDeviceGetHandleByIndex_v2", &nvml.by_index) &&
      Bind(h, "nvmlDeviceGetName", &nvml.name) &&
      Bind(h, "nvmlDeviceGetMemoryInfo", &nvml.memory) &&
      Bind(h, "nvmlErrorString", &nvml.error_string, false) &&
      Bind(h, "nvmlSystemGetDriverVersion", &nvml.driver_version, false) &&
      Bind(h, "nvmlDeviceGetUUID", &nvml.uuid, false) &&
      Bind(h, "nvmlDeviceGetPciInfo_v3", &nvml.pci, false) &&
      Bind(h, "nvmlDeviceGetTopologyCommonAncestor", &nvml.common_ancestor, false) &&
      Bind(h, "nvmlDeviceGetNvLinkState", &nvml.nvlink_state, false) &&
      Bind(h, "nvmlDeviceGetNvLinkRemotePciInfo_v2", &nvml.nvlink_remote_pci, false) &&
      Bind(h, "nvmlDeviceGetNvLinkRemoteDeviceType", &nvml.nvlink_remote_type, false);
  if (!bound) {
    facts.note = absl::StrCat(library, " lacks a required NVML entry point (driver too old?)");
    return facts;
  }
  if (NvmlReturn rc = nvml.init(); rc != 0) {
    facts.note = absl::StrCat("nvmlInit failed: ",
                              nvml.error_string ? nvml.error_string(rc) : std::to_string(rc));
    return facts;
  }
  facts.nvml_loaded = true;
  char text[256] = {};
  if (nvml.driver_version != nullptr && nvml.driver_version(text, sizeof(text)) == 0) {
    facts.driver_version = text;
  }
  unsigned count = 0;
  if (nvml.count(&count) != 0) count = 0;
  std::vector<NvmlDevice> devices;
  for (unsigned i = 0; i < count; ++i) {
    NvmlDevice device = nullptr;
    if (nvml.by_index(i, &device) != 0) continue;
    v1::GpuInfo* gpu = &facts.gpus.emplace_back();
    gpu->set_index(static_cast<int>(i));
    if (nvml.name(device, text, sizeof(text)) == 0) gpu->set_name(text);
    if (nvml.uuid != nullptr && nvml.uuid(device, text, sizeof(text)) == 0) gpu->set_uuid(text);
    NvmlMemory memory{};
    if (nvml.memory(device, &memory) == 0) {
      gpu->set_memory_total_bytes(memory.total);
      gpu->set_memory_free_bytes(memory.free);
    }
    NvmlPciInfo pci{};
    if (nvml.pci != nullptr && nvml.pci(device, &pci) == 0) gpu->set_pci_bus_id(pci.bus_id);
    devices.push_back(device);
  }
  if (facts.gpus.empty()) facts.note = "NVML found no GPU";
  FillTopology(nvml, devices, &facts);
  nvml.shutdown();
  return facts;
}

}  // namespace zerorun::worker
