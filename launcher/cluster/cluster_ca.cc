// Cluster CA and certificates with libcrypto (see cluster_ca.h).
#include "cluster/cluster_ca.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "security/tls.h"

namespace zerorun::launcher {
namespace {

struct FreeKey {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct FreeCert {
  void operator()(X509* x) const { X509_free(x); }
};
struct FreeBio {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Key = std::unique_ptr<EVP_PKEY, FreeKey>;
using Cert = std::unique_ptr<X509, FreeCert>;

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 253 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':';
    if (!ok) return false;
  }
  return true;
}

bool IsIpAddress(const std::string& name) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, name.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

// Writes `text` to a new file `path` (O_EXCL) with `mode`.
absl::Status WriteNew(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("cannot create", path);
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  fchmod(fd, mode) == 0 && fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : ErrnoError("cannot write", path);
}

std::string Pem(const std::function<int(BIO*)>& write_pem) {
  std::unique_ptr<BIO, FreeBio> bio(BIO_new(BIO_s_mem()));
  if (write_pem(bio.get()) != 1) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) {
    return absl::InternalError(absl::StrCat("cannot make extension ", OBJ_nid2sn(nid), "=", value));
  }
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return added == 1 ? absl::OkStatus()
                    : absl::InternalError(absl::StrCat("cannot add extension ", OBJ_nid2sn(nid)));
}

// A certificate for `key` named `cn`, signed by (issuer, issuer_key), or self-signed for the CA.
absl::StatusOr<Cert> MakeCert(EVP_PKEY* key, const std::string& cn, X509* issuer,
                              EVP_PKEY* issuer_key, bool ca, const std::string& san,
                              const char* usage, const Validity& validity,
                              const char* unit = nullptr) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  BIGNUM* serial = BN_new();
  BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), validity.not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity.not_after);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("zerorun"), -1, -1, 0);
  if (unit != nullptr) {
    X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(unit), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::pair<int, std::string> extensions[] = {
      {NID_basic_constraints, ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE"},
      {NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
      {NID_ext_key_usage, usage == nullptr ? "" : usage},
      {NID_subject_alt_name, san}};
  for (const auto& [nid, value] : extensions) {
    if (value.empty()) continue;
    if (absl::Status s = AddExtension(cert.get(), &ctx, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return absl::InternalError(absl::StrCat("cannot sign the certificate of ", cn));
  }
  return cert;
}

Key NewKey() { return Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

std::string KeyPem(EVP_PKEY* key) {
  return Pem([key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}
std::string CertPem(X509* cert) {
  return Pem([cert](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("cannot create", path);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EphemeralTls> NewEphemeralTls(const std::string& name, int days) {
  const Validity validity{-300, int64_t{days} * 86400};
  Key ca_key = NewKey();
  Key key = NewKey();
  if (ca_key == nullptr || key == nullptr) return absl::InternalError("cannot make an EC key");
  absl::StatusOr<Cert> ca =
      MakeCert(ca_key.get(), name + " CA", nullptr, nullptr, /*ca=*/true, "", nullptr, validity);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<Cert> cert = MakeCert(key.get(), name, ca->get(), ca_key.get(), /*ca=*/false,
                                       "DNS:" + name, "serverAuth", validity);
  if (!cert.ok()) return cert.status();
  return EphemeralTls{CertPem(ca->get()), CertPem(cert->get()), KeyPem(key.get())};
}

absl::Status IssueCertificate(const std::string& dir, CertKind kind, const std::string& name,
                              const Validity& validity) {
  const char* what = kind == CertKind::kNode ? "node" : "user";
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " name '", name.substr(0, 64), "' must be 1-253 characters of [A-Za-z0-9._:-]"));
  }
  absl::StatusOr<std::string> ca_pem = ReadPemFile(dir + "/ca.crt");
  if (!ca_pem.ok()) return ca_pem.status();
  absl::StatusOr<std::string> ca_key_pem = ReadPemFile(dir + "/ca.key");
  if (!ca_key_pem.ok()) return ca_key_pem.status();
  std::unique_ptr<BIO, FreeBio> cert_bio(BIO_new_mem_buf(ca_pem->data(), ca_pem->size()));
  std::unique_ptr<BIO, FreeBio> key_bio(BIO_new_mem_buf(ca_key_pem->data(), ca_key_pem->size()));
  Cert ca(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  Key ca_key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (ca == nullptr || ca_key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/ca.crt or ca.key is not a PEM CA"));
  }
  const std::string group = absl::StrCat(dir, kind == CertKind::kNode ? "/nodes" : "/users");
  const std::string out = absl::StrCat(group, "/", name);
  if (absl::Status s = MakeDir(group); !s.ok()) return s;
  if (mkdir(out.c_str(), 0700) != 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(out, " exists: ", what, " ", name,
                                                   " has a certificate (remove the directory "
                                                   "to issue a new one)"));
    }
    return ErrnoError("cannot create", out);
  }
  Key key = NewKey();
  const std::string san =
      kind == CertKind::kUser ? "" : absl::StrCat(IsIpAddress(name) ? "IP:" : "DNS:", name);
  absl::StatusOr<Cert> cert =
      MakeCert(key.get(), name, ca.get(), ca_key.get(), /*ca=*/false, san,
               kind == CertKind::kNode ? "serverAuth,clientAuth" : "clientAuth", validity,
               kind == CertKind::kNode ? kNodeUnit : kUserUnit);
  if (!cert.ok()) return cert.status();
  if (absl::Status s = WriteNew(out + "/" + kKeyFile, KeyPem(key.get()), 0600); !s.ok()) return s;
  if (absl::Status s = WriteNew(out + "/" + kCertFile, CertPem(cert->get()), 0644); !s.ok()) {
    return s;
  }
  return WriteNew(out + "/" + kCaFile, *ca_pem, 0644);
}

absl::Status InitCluster(const std::string& dir, const std::vector<std::string>& nodes,
                         const std::vector<std::string>& users, int ca_days) {
  if (absl::Status s = MakeDir(dir); !s.ok()) return s;
  if (access((dir + "/ca.key").c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        dir,
        " holds a cluster CA already (ca.key); nothing was changed. Add certificates with "
        "`zerorun cluster issue ",
        dir, " --node N | --user U`"));
  }
  Key key = NewKey();
  Validity validity;
  validity.not_after = int64_t{ca_days} * 86400;
  absl::StatusOr<Cert> ca = MakeCert(key.get(), "zerorun cluster CA", nullptr, nullptr, /*ca=*/true,
                                     "", nullptr, validity);
  if (!ca.ok()) return ca.status();
  if (absl::Status s = WriteNew(dir + "/ca.key", KeyPem(key.get()), 0600); !s.ok()) return s;
  if (absl::Status s = WriteNew(dir + "/ca.crt", CertPem(ca->get()), 0644); !s.ok()) return s;
  if (absl::Status s = WriteNew(dir + "/revoked", "", 0644); !s.ok()) return s;
  for (const std::string& node : nodes) {
    if (absl::Status s = IssueCertificate(dir, CertKind::kNode, node); !s.ok()) return s;
  }
  for (const std::string& user : users) {
    if (absl::Status s = IssueCertificate(dir, CertKind::kUser, user); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RevokeCertificate(const std::string& dir, CertKind kind, const std::string& name) {
  const std::string path =
      absl::StrCat(dir, kind == CertKind::kNode ? "/nodes/" : "/users/", name, "/", kCertFile);
  absl::StatusOr<std::string> pem = ReadPemFile(path);
  if (!pem.ok()) return absl::NotFoundError(absl::StrCat("no certificate ", path));
  absl::StatusOr<CertIdentity> id = IdentifyCertificate(*pem);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", id.status().message()));
  const std::string* serial = &id->serial;
  const std::string list = dir + "/revoked";
  const int fd = open(list.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot open", list);
  const std::string line = absl::StrCat(*serial, " ", name, "\n");
  const bool ok =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  close(fd);
  return ok ? absl::OkStatus() : ErrnoError("cannot write", list);
}

}  // namespace zerorun::launcher
