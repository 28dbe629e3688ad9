// `zerorun cluster init` / `cluster issue`: a cluster CA and the certificates zerorund (nodes) and
// the launcher (users) present to each other for mTLS, made with OpenSSL's libcrypto. Layout:
//   DIR/ca.crt, DIR/ca.key (0600)          the cluster CA (EC P-256, SHA-256)
//   DIR/revoked                            revoked serials, for `zerorund --revoked`
//   DIR/nodes/<name>/{ca.crt,cert.crt,cert.key}   for `zerorund --tls-dir`
//   DIR/users/<name>/{ca.crt,cert.crt,cert.key}   for `zerorun --tls-dir`
#ifndef ZERORUN_LAUNCHER_CLUSTER_CLUSTER_CA_H_
#define ZERORUN_LAUNCHER_CLUSTER_CLUSTER_CA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "security/tls.h"

namespace zerorun::launcher {

using ::zerorun::CertKind;  // kNode or kUser (proto/security/tls.h: what each may do).

// Validity of an issued certificate, in seconds from now (negative: in the past).
struct Validity {
  int64_t not_before = -300;  // Some clock skew between hosts.
  int64_t not_after = int64_t{365} * 86400;
};

// Creates DIR (0700; it may exist but must not hold a CA already: AlreadyExists, nothing is
// overwritten) with a new CA valid `ca_days`, then issues every node and user certificate.
absl::Status InitCluster(const std::string& dir, const std::vector<std::string>& nodes,
                         const std::vector<std::string>& users, int ca_days = 3650);

// Issues one certificate with DIR's CA into DIR/nodes/<name>/ or DIR/users/<name>/ (which must
// not exist). A node's name is what hostfiles dial (a host name or an IP address: its subject
// alternative name, so the launcher's TLS check of the address passes); a user's is the identity
// zerorund sees (the subject's common name). InvalidArgument for a name outside
// [A-Za-z0-9._:-] (1-253 characters).
absl::Status IssueCertificate(const std::string& dir, CertKind kind, const std::string& name,
                              const Validity& validity = {});

// A job's own TLS identity, made in memory and never written: a CA valid `days` and a server
// certificate of it for `name` (EC P-256). The coordinator serves with cert/key; its clients
// trust ca only.
struct EphemeralTls {
  std::string ca_pem, cert_pem, key_pem;
};
absl::StatusOr<EphemeralTls> NewEphemeralTls(const std::string& name, int days = 30);

// Adds DIR/<nodes|users>/<name>/cert.crt's serial to DIR/revoked (zerorund --revoked): that
// certificate is refused from the next call on. NotFound when there is no such certificate.
absl::Status RevokeCertificate(const std::string& dir, CertKind kind, const std::string& name);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLUSTER_CLUSTER_CA_H_
