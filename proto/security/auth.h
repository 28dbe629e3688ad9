// Authentication helpers of the control plane: the shared secret (call metadata, files with their
// permissions checked), loopback decided on resolved addresses, and the per-rank tokens the
// coordinator accepts from ranks instead of the job secret.
#ifndef ZERORUN_PROTO_SECURITY_AUTH_H_
#define ZERORUN_PROTO_SECURITY_AUTH_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace zerorun {

// Metadata key that carries the cluster (agents) or job (coordinator) secret on every call.
inline constexpr char kSecretMetadata[] = "x-zerorun-secret";

// Constant-time comparison (the time does not depend on where the strings differ).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The secret the call's metadata carries ("" when none).
std::string CallSecret(const grpc::ServerContext& context);

// OK when `expected` is empty (no secret configured) or the call's metadata carries it;
// UNAUTHENTICATED otherwise.
grpc::Status CheckSecret(const grpc::ServerContext& context, const std::string& expected);

// Adds the secret to an outgoing call (nothing when empty).
void AttachSecret(grpc::ClientContext* context, const std::string& secret);

// True when `address` ("host:port", "[v6]:port" or a bare host) names loopback only: a numeric
// 127.0.0.0/8 or ::1 address, or a name every address of which the resolver returns is one. The
// spelling decides nothing ("127.evil.example" is whatever it resolves to); a name that does not
// resolve, and the wildcard addresses, are not loopback.
bool IsLoopbackListenAddress(const std::string& address);

// OK when `path` is a regular file only its owner may read or write; PermissionDenied naming
// `what`, the path, its mode and the fix (chmod 600) when group or others may; NotFound when it
// is missing.
absl::Status CheckPrivateFile(const std::string& path, const std::string& what);

// Reads a secret: the first line of `path`, trimmed, after CheckPrivateFile. NotFound /
// PermissionDenied / InvalidArgument (empty) naming the path.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// The exit code for a ReadSecretFile error: 66 missing, 77 group/other access, 65 otherwise.
int SecretFileExit(const absl::Status& status);

// 32 random bytes from /dev/urandom as hex.
std::string NewSecret();

// HMAC-SHA256 of `message` under `key`, as lower-case hex.
std::string HmacSha256Hex(std::string_view key, std::string_view message);

// A rank's credential for the coordinator, given to it in ZERORUN_JOB_SECRET instead of the job
// secret: "r<rank>.<hex HMAC-SHA256(job secret, job id and rank)>". It authorizes the KV store and
// Reports of that rank only, never JobStatus or Stop (which need the job secret).
std::string RankToken(const std::string& job_secret, const std::string& job_id, int rank);
// The rank `token` was made for, or -1 when it is not a token of this job (constant-time check).
int RankOfToken(const std::string& job_secret, const std::string& job_id, std::string_view token);

}  // namespace zerorun

#endif  // ZERORUN_PROTO_SECURITY_AUTH_H_
