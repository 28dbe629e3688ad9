// Credentials directories, gRPC SSL credentials and peer names (see tls.h).
#include "tls.h"

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "auth.h"

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

std::string PeerCommonName(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  const std::vector<grpc::string_ref> names = auth->FindPropertyValues("x509_common_name");
  if (names.empty()) return "";
  return std::string(names.front().data(), names.front().size());
}

absl::StatusOr<std::string> CertificateSerial(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::InvalidArgumentError("not a PEM certificate");
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string serial = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  X509_free(cert);
  return serial;
}

std::string PeerCertificateSerial(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  const std::vector<grpc::string_ref> pems = auth->FindPropertyValues("x509_pem_cert");
  if (pems.empty()) return "";
  absl::StatusOr<std::string> serial =
      CertificateSerial(std::string(pems.front().data(), pems.front().size()));
  return serial.ok() ? *serial : "";
}

absl::Status CheckNotRevoked(const std::string& path, const std::string& serial) {
  std::ifstream in(path);
  if (!in) {
    return absl::UnavailableError(
        absl::StrCat("the revocation list ", path, " cannot be read: every call is refused"));
  }
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string revoked, name;
    words >> revoked >> name;
    if (!serial.empty() && revoked == serial) {
      return absl::PermissionDeniedError(
          absl::StrCat("the certificate of ", name, " (serial ", serial, ") is revoked in ", path));
    }
  }
  return absl::OkStatus();
}

}  // namespace zerorun
