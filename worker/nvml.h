// GPU discovery through NVML loaded with dlopen (no header or dev package needed): count, model,
// memory, PCI bus id, and the NVLink/PCIe matrix `nvidia-smi topo -m` prints.
#ifndef ZERORUN_WORKER_NVML_H_
#define ZERORUN_WORKER_NVML_H_

#include <string>
#include <vector>

#include "zerorun/v1/common.pb.h"

namespace zerorun::worker {

struct GpuFacts {
  bool nvml_loaded = false;
  std::string note;  // Why no GPUs were found, when none were.
  std::string driver_version;
  std::vector<v1::GpuInfo> gpus;
  std::vector<v1::TopologyRow> topology;  // gpus.size() rows of gpus.size() cells.
};

// Probes the GPUs through the NVML library at `library` (normally libnvidia-ml.so.1). Never
// fails: a missing library, a failing nvmlInit or no devices give zero GPUs with `note` saying
// why. Thread-compatible; each call loads, initializes and shuts NVML down again.
GpuFacts ProbeGpus(const std::string& library);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_NVML_H_
