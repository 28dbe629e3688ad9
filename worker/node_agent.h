// NodeAgent: the node-local logic behind the NodeAgent gRPC service. zerorund serves it on each
// node; the launcher calls it in-process when every host is this machine.
#ifndef ZERORUN_WORKER_NODE_AGENT_H_
#define ZERORUN_WORKER_NODE_AGENT_H_

#include <string>

#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

class NodeAgent {
 public:
  // `nvml_library` is the NVML shared library to dlopen (see ZR_NVML_LIBRARY).
  explicit NodeAgent(std::string nvml_library);

  // Probes this node and judges it for the job in `request`. Read-only: creates nothing (the
  // O_DIRECT probe file it writes in an existing nvme_path is removed at once). Every check row
  // names request.node(); a CRITICAL row carries the exit code it implies (66 for a missing
  // file, 69 otherwise). Thread-safe.
  v1::ProbeReply Probe(const v1::ProbeRequest& request) const;

  // Number of GPUs NVML sees on this node; 0 without a driver.
  int CountGpus() const;

 private:
  const std::string nvml_library_;
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_NODE_AGENT_H_
