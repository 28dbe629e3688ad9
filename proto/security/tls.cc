// Credentials directories, gRPC SSL credentials and peer names (see tls.h).
#include "security/tls.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "security/auth.h"

namespace zerorun {

absl::StatusOr<std::string> ReadPemFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no PEM data"));
  }
  return text.str();
}

absl::StatusOr<TlsFiles> ReadTlsDir(const std::string& dir) {
  TlsFiles files;
  const std::string key = absl::StrCat(dir, "/", kKeyFile);
  if (absl::Status s = CheckPrivateFile(key, "TLS key"); !s.ok()) return s;
  const std::pair<std::string*, const char*> wanted[] = {
      {&files.ca_pem, kCaFile}, {&files.cert_pem, kCertFile}, {&files.key_pem, kKeyFile}};
  for (const auto& [out, name] : wanted) {
    absl::StatusOr<std::string> pem = ReadPemFile(absl::StrCat(dir, "/", name));
    if (!pem.ok()) return pem.status();
    *out = *std::move(pem);
  }
  return files;
}

std::shared_ptr<grpc::ChannelCredentials> ClientAuth::Credentials() const {
  if (!mtls()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca_pem;
  options.pem_cert_chain = tls.cert_pem;
  options.pem_private_key = tls.key_pem;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> ServerTlsCredentials(const TlsFiles& files) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = files.ca_pem;
  options.pem_key_cert_pairs.push_back({files.key_pem, files.cert_pem});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<CertIdentity> IdentifyCertificate(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::InvalidArgumentError("not a PEM certificate");
  CertIdentity id;
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = bn != nullptr ? BN_bn2hex(bn) : nullptr;
  id.serial = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  // The subject's entry `nid`, or "" when it has none.
  auto entry = [cert](int nid) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int at = X509_NAME_get_index_by_NID(subject, nid, -1);
    if (at < 0) return std::string();
    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                       static_cast<size_t>(ASN1_STRING_length(value)));
  };
  id.name = entry(NID_commonName);
  const std::string unit = entry(NID_organizationalUnitName);
  const uint32_t usage = X509_get_extended_key_usage(cert);  // UINT32_MAX when it has none.
  if (unit == kUserUnit && (usage & XKU_SSL_SERVER) == 0) {
    id.kind = CertKind::kUser;
  } else if (unit == kNodeUnit) {
    id.kind = CertKind::kNode;
  } else if (unit.empty() && usage != UINT32_MAX) {
    id.kind = (usage & XKU_SSL_SERVER) != 0   ? CertKind::kNode
              : (usage & XKU_SSL_CLIENT) != 0 ? CertKind::kUser
                                              : CertKind::kOther;
  }
  X509_free(cert);
  return id;
}

std::optional<CertIdentity> PeerIdentity(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return std::nullopt;
  const std::vector<grpc::string_ref> pems = auth->FindPropertyValues("x509_pem_cert");
  if (pems.empty()) return std::nullopt;
  absl::StatusOr<CertIdentity> id =
      IdentifyCertificate(std::string(pems.front().data(), pems.front().size()));
  if (!id.ok()) return std::nullopt;
  return *std::move(id);
}

absl::Status CheckNotRevoked(const std::string& path, const std::string& serial) {
  // Fail closed on anything but a readable list: a directory, a FIFO, a read error or a line
  // that is not "<serial hex> <name>" refuses every call.
  auto unusable = [&path](const std::string& why) {
    return absl::UnavailableError(absl::StrCat("the revocation list ", path, " ", why,
                                               ": every call is refused. Fix: restore the file "
                                               "`zerorun cluster revoke` writes"));
  };
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return unusable(absl::StrCat("cannot be read (", strerror(errno), ")"));
  struct stat st {};
  std::string text;
  bool read_ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  const bool regular = read_ok;
  char buffer[65536];
  while (read_ok && text.size() < (size_t{64} << 20)) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) read_ok = false;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  if (!regular) return unusable("is not a regular file");
  if (!read_ok) return unusable("cannot be read");
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    std::istringstream words(line);
    std::string revoked, name;
    if (!(words >> revoked)) continue;  // A blank line.
    if (revoked[0] == '#') continue;
    words >> name;
    const bool hex = revoked.find_first_not_of("0123456789ABCDEFabcdef") == std::string::npos;
    if (!hex) {
      return unusable(absl::StrCat("line ", number, " is not '<serial hex> <name>'"));
    }
    if (!serial.empty() && absl::AsciiStrToUpper(revoked) == serial) {
      return absl::PermissionDeniedError(
          absl::StrCat("the certificate of ", name, " (serial ", serial, ") is revoked in ", path));
    }
  }
  return absl::OkStatus();
}

}  // namespace zerorun
