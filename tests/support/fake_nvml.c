/* A fake libnvidia-ml (test double: this machine has no GPU) for the node agent's NVML probe.
 * ZR_FAKE_NVML_GPUS sets the GPU count (default 4). GPUs 2k and 2k+1 share 4 NVLinks; other
 * pairs are PCIe: PHB within a half of the GPUs, SYS across halves. ZR_FAKE_NVML_PCIE_ONLY=1:
 * no NVLink at all (a PCIe-only node). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  unsigned long long total, free, used;
} Memory;
typedef struct {
  char bus_id_legacy[16];
  unsigned int domain, bus, device, pci_device_id, pci_sub_system_id;
  char bus_id[32];
} PciInfo;

static unsigned Count(void) {
  const char* text = getenv("ZR_FAKE_NVML_GPUS");
  return text ? (unsigned)atoi(text) : 4u;
}
static unsigned Index(void* device) { return (unsigned)(unsigned long)device - 1u; }
static void BusId(unsigned i, char* out) { snprintf(out, 32, "00000000:%02X:00.0", 0x10 + i); }

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char* nvmlErrorString(int rc) { return rc == 0 ? "Success" : "Fake error"; }
int nvmlSystemGetDriverVersion(char* out, unsigned n) {
  snprintf(out, n, "fake-550.54");
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = Count();
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** device) {
  if (i >= Count()) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
  *device = (void*)(unsigned long)(i + 1);
  return 0;
}
int nvmlDeviceGetName(void* device, char* out, unsigned n) {
  (void)device;
  snprintf(out, n, "Fake H100 80GB HBM3");
  return 0;
}
int nvmlDeviceGetUUID(void* device, char* out, unsigned n) {
  snprintf(out, n, "GPU-fake-%u", Index(device));
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  (void)device;
  memory->total = 80ull << 30;
  memory->used = 1ull << 30;
  memory->free = memory->total - memory->used;
  return 0;
}
int nvmlDeviceGetPciInfo_v3(void* device, PciInfo* pci) {
  memset(pci, 0, sizeof(*pci));
  BusId(Index(device), pci->bus_id);
  return 0;
}
int nvmlDeviceGetTopologyCommonAncestor(void* a, void* b, int* level) {
  const unsigned half = Count() / 2;
  *level = (Index(a) < half) == (Index(b) < half) ? 30 /* HOSTBRIDGE */ : 50 /* SYSTEM */;
  return 0;
}
int nvmlDeviceGetNvLinkState(void* device, unsigned link, int* active) {
  const char* pcie_only = getenv("ZR_FAKE_NVML_PCIE_ONLY");
  *active = link < 4 && (Index(device) ^ 1u) < Count() && !(pcie_only && pcie_only[0] == '1');
  return 0;
}
int nvmlDeviceGetNvLinkRemoteDeviceType(void* device, unsigned link, int* type) {
  (void)device;
  (void)link;
  *type = 0; /* GPU */
  return 0;
}
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void* device, unsigned link, PciInfo* pci) {
  (void)link;
  memset(pci, 0, sizeof(*pci));
  BusId(Index(device) ^ 1u, pci->bus_id);
  return 0;
}
