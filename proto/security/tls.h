// mTLS for the control plane: a cluster's directory layout (`zerorun cluster init`), loading a
// node's server credentials and a user's client credentials from it (key files checked 0600),
// and the authenticated peer's name. Plaintext plus the shared secret stays for loopback and for
// the explicit shared-secret mode.
#ifndef ZERORUN_PROTO_SECURITY_TLS_H_
#define ZERORUN_PROTO_SECURITY_TLS_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace zerorun {

// A credentials directory holds ca.crt (the cluster CA), and cert.crt + cert.key (this node's or
// this user's certificate, signed by the CA, and its private key, mode 0600).
inline constexpr char kCaFile[] = "ca.crt";
inline constexpr char kCertFile[] = "cert.crt";
inline constexpr char kKeyFile[] = "cert.key";

// The whole of a PEM file (certificates, keys). NotFound when it cannot be read,
// InvalidArgument when it holds no PEM block; both name the path.
absl::StatusOr<std::string> ReadPemFile(const std::string& path);

struct TlsFiles {
  std::string ca_pem, cert_pem, key_pem;
};
// Reads DIR/ca.crt, DIR/cert.crt and DIR/cert.key. NotFound naming a missing file,
// PermissionDenied for a key group or others may read (Fix: chmod 600).
absl::StatusOr<TlsFiles> ReadTlsDir(const std::string& dir);

// How a client authenticates to zerorund: mTLS with `tls` when its CA is set (the server's
// certificate must be the CA's and name the address dialled), else plaintext with `secret` (sent
// with every call when not empty).
struct ClientAuth {
  std::string secret;
  TlsFiles tls;
  bool mtls() const { return !tls.ca_pem.empty(); }
  // Plaintext with `secret` alone (the agents a launch backend started itself).
  static ClientAuth WithSecret(std::string secret) {
    ClientAuth auth;
    auth.secret = std::move(secret);
    return auth;
  }
  std::shared_ptr<grpc::ChannelCredentials> Credentials() const;
};

// zerorund's server credentials: its certificate, and every client must present one the cluster
// CA signed (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY).
std::shared_ptr<grpc::ServerCredentials> ServerTlsCredentials(const TlsFiles& files);

// What a cluster certificate was issued for. `zerorun cluster issue` writes it in the subject's
// organizational unit (kNodeUnit, kUserUnit); a certificate without one (issued before that) is a
// node's when it may serve (extended key usage serverAuth), a user's when it may only be a client.
// Only a user's certificate acts as a user: a node certificate named like a user is no one.
enum class CertKind { kNode, kUser, kOther };
inline constexpr char kNodeUnit[] = "zerorun node";
inline constexpr char kUserUnit[] = "zerorun user";

struct CertIdentity {
  std::string name;  // The subject's common name.
  CertKind kind = CertKind::kOther;
  std::string serial;  // Upper-case hex.
};

// The identity in a PEM certificate; InvalidArgument when it is none.
absl::StatusOr<CertIdentity> IdentifyCertificate(const std::string& pem);
// The identity of an mTLS call's verified client certificate; nullopt for a plaintext call.
std::optional<CertIdentity> PeerIdentity(const grpc::ServerContext& context);

// A revocation list (`zerorun cluster revoke`): one "<serial hex> <name>" line per revoked
// certificate. OK when `serial` is not in the file at `path`; PermissionDenied naming the
// certificate's name when it is; Unavailable when the file cannot be read (fail closed).
absl::Status CheckNotRevoked(const std::string& path, const std::string& serial);

}  // namespace zerorun

#endif  // ZERORUN_PROTO_SECURITY_TLS_H_
