// The gRPC boundary helpers every service and client shares: absl <-> gRPC status, and the
// shared-secret metadata check (constant-time compare).
#ifndef ZERORUN_PROTO_GRPC_UTIL_H_
#define ZERORUN_PROTO_GRPC_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace zerorun {

// Metadata key that carries the cluster (agents) or job (coordinator) secret on every call.
inline constexpr char kSecretMetadata[] = "x-zerorun-secret";

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// OK when `expected` is empty (no secret configured) or the call's metadata carries it;
// UNAUTHENTICATED otherwise.
grpc::Status CheckSecret(const grpc::ServerContext& context, const std::string& expected);

// Adds the secret to an outgoing call (nothing when empty).
void AttachSecret(grpc::ClientContext* context, const std::string& secret);

// Keepalive on every zerorun connection, both ends: a ping every 2 s, 3 s to answer, so a peer
// that froze or vanished without closing the connection is found in ~5 s. Client channels also
// retry a refused connection every 100 ms-1 s (gRPC's default backoff grows to minutes, longer
// than a daemon restart) with a 5 s connect timeout.
grpc::ChannelArguments ClientChannelArgs();
void AddServerKeepalive(grpc::ServerBuilder* builder);

// True for 127.0.0.0/8, ::1 and "localhost" listen addresses ("host:port" or "[v6]:port").
bool IsLoopbackListenAddress(const std::string& address);

// Reads a secret: the first line of `path`, trimmed. NotFound / InvalidArgument when missing or
// empty.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// 32 random bytes from /dev/urandom as hex.
std::string NewSecret();

}  // namespace zerorun

#endif  // ZERORUN_PROTO_GRPC_UTIL_H_
