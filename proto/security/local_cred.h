// Local identity for zerorund's UNIX socket: the kernel says who connected (SO_PEERCRED) to a
// credential socket, zerorund answers with a short-lived credential bound to that uid, and the
// client sends it with each call on the gRPC UNIX socket (MUNGE's idea, without a shared key).
#ifndef ZERORUN_PROTO_SECURITY_LOCAL_CRED_H_
#define ZERORUN_PROTO_SECURITY_LOCAL_CRED_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rpc/accept_loop.h"

namespace zerorun {

// Metadata key of the local credential on calls over zerorund's UNIX socket.
inline constexpr char kLocalCredMetadata[] = "x-zerorun-local";

// The path of a "unix:PATH" gRPC target (also "unix://PATH"); "" for any other target.
std::string UnixSocketPath(absl::string_view target);

// True when a call's peer (grpc::ServerContext::peer()) came over a UNIX socket.
bool IsUnixPeer(absl::string_view peer);

// The credential socket that serves the gRPC UNIX socket at `socket_path`.
std::string CredentialSocketPath(const std::string& socket_path);

// Makes `path` free for a listener: nothing there is fine; a socket nobody serves (an earlier
// process's) is removed; a socket a live process serves is Unavailable ("in use"); anything else
// is FailedPrecondition naming it (never removed).
absl::Status ClaimSocketPath(const std::string& path);

// Client: one credential from the credential socket at `path`, issued to this process's uid.
// Unavailable naming the path when nothing serves it or it does not answer within `timeout`.
absl::StatusOr<std::string> FetchLocalCredential(const std::string& path,
                                                 absl::Duration timeout = absl::Seconds(2));

// zerorund: serves the credential socket (mode 0666: any local user may ask for its own
// credential) on a thread; credentials are "u<uid>.<expiry>.<HMAC-SHA256>" under a key made at
// start, so they die with this process and with their lifetime.
class LocalCredentialServer {
 public:
  // Claims `path` (ClaimSocketPath), binds it and starts answering. Errors name the path.
  static absl::StatusOr<std::unique_ptr<LocalCredentialServer>> Start(
      const std::string& path, absl::Duration lifetime = absl::Seconds(60));
  ~LocalCredentialServer();  // Stops the thread and removes the socket.

  const std::string& path() const { return path_; }
  // The uid `credential` was issued to. Unauthenticated when it is malformed, forged, issued by
  // another server, or expired at `now`.
  absl::StatusOr<uid_t> Verify(absl::string_view credential, absl::Time now = absl::Now()) const;
  // The credential the socket hands to `uid` at `now` (tests forge with other keys through it).
  std::string Issue(uid_t uid, absl::Time now = absl::Now()) const;

 private:
  LocalCredentialServer(std::string path, absl::Duration lifetime);
  void Answer(int client) const;

  const std::string path_;
  const absl::Duration lifetime_;
  const std::string key_;
  std::unique_ptr<AcceptLoop> loop_;  // Last: it stops before the rest goes.
};

}  // namespace zerorun

#endif  // ZERORUN_PROTO_SECURITY_LOCAL_CRED_H_
