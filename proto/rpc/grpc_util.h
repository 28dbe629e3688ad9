// The gRPC boundary helpers every service and client shares: absl <-> gRPC status, keepalive and
// message limits (authentication: auth.h, included).
#ifndef ZERORUN_PROTO_RPC_GRPC_UTIL_H_
#define ZERORUN_PROTO_RPC_GRPC_UTIL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "security/auth.h"

namespace zerorun {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Keepalive on every zerorun connection, both ends: a ping every 2 s, 3 s to answer, so a peer
// that froze or vanished without closing the connection is found in ~5 s. Client channels also
// retry a refused connection every 100 ms-1 s (gRPC's default backoff grows to minutes, longer
// than a daemon restart) with a 5 s connect timeout.
grpc::ChannelArguments ClientChannelArgs();
// Servers also take requests of at most kMaxRequestBytes (gRPC's default, stated here: the largest
// is a launch with its config, far below it).
inline constexpr int kMaxRequestBytes = 4 << 20;
void AddServerKeepalive(grpc::ServerBuilder* builder);

// The name every job's coordinator certificate is for; clients check it whatever address they
// dial (a node reaches the launcher by an address no certificate could list in advance).
inline constexpr char kCoordinatorTlsName[] = "zerorun-coordinator";
// A channel to a job's coordinator: TLS trusting only `ca_pem` (the job's own CA: the ranks'
// ZERORUN_COORDINATOR_CA, the job record's coordinator_ca) for kCoordinatorTlsName; plaintext
// when `ca_pem` is empty (a coordinator of this project's tests, not a launched job's).
std::shared_ptr<grpc::Channel> CoordinatorChannel(const std::string& address,
                                                  const std::string& ca_pem);

}  // namespace zerorun

#endif  // ZERORUN_PROTO_RPC_GRPC_UTIL_H_
