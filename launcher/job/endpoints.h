// Where each node's ranks reach the job and each other: the address a rank binds and
// advertises (its node as the hostfile names it), and the coordinator and MASTER_ADDR addresses
// as seen from that node (the launcher's source address on the route toward it).
#ifndef ZERORUN_LAUNCHER_JOB_ENDPOINTS_H_
#define ZERORUN_LAUNCHER_JOB_ENDPOINTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inputs/hostfile.h"

namespace zerorun::launcher {

struct NodeEndpoints {
  std::string node_addr;    // ZERORUN_NODE_ADDR: what this node's ranks bind and advertise.
  std::string coordinator;  // ZERORUN_COORDINATOR host:port, reachable from this node.
  std::string master_addr;  // MASTER_ADDR, reachable from this node.
};

// The IPv4 address this machine sends from toward `host` (the kernel's route choice: a UDP
// connect, no packet sent). NotFound when the name does not resolve, Unavailable without a route.
absl::StatusOr<std::string> LocalAddressToward(const std::string& host);

// One entry per host, in node-rank order. When every node is this machine everything is
// 127.0.0.1. Otherwise a node on this machine (`here`: the embedded agent's or a UNIX socket's)
// advertises the launcher's address toward the first other node; the coordinator is on
// `coordinator_port` of the launcher's address toward each node; MASTER_ADDR is `master_addr` when
// given, else node 0's node_addr (node 0 being this machine: the launcher's address toward that
// node).
absl::StatusOr<std::vector<NodeEndpoints>> ResolveEndpoints(const std::vector<Host>& hosts,
                                                            const std::vector<bool>& here,
                                                            int coordinator_port,
                                                            const std::string& master_addr);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_ENDPOINTS_H_
