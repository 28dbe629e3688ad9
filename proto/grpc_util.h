// The gRPC boundary helpers every service and client shares: absl <-> gRPC status, keepalive and
// message limits (authentication: auth.h, included).
#ifndef ZERORUN_PROTO_GRPC_UTIL_H_
#define ZERORUN_PROTO_GRPC_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "auth.h"
#include "grpcpp/grpcpp.h"

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

}  // namespace zerorun

#endif  // ZERORUN_PROTO_GRPC_UTIL_H_
