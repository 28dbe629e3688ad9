// Shared-secret checks, secret files, loopback resolution and rank tokens (see auth.h).
#include "security/auth.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/exit_codes.h"

namespace zerorun {
namespace {

std::string Hex(const unsigned char* bytes, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
  return out;
}

bool LoopbackSockaddr(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) != 0;
  }
  return false;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

std::string CallSecret(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kSecretMetadata);
  if (it == metadata.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

grpc::Status CheckSecret(const grpc::ServerContext& context, const std::string& expected) {
  if (expected.empty() || ConstantTimeEquals(CallSecret(context), expected)) {
    return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or wrong secret (x-zerorun-secret); give the same --secret-file "
                      "or ZR_SECRET to zerorun and zerorund");
}

void AttachSecret(grpc::ClientContext* context, const std::string& secret) {
  if (!secret.empty()) context->AddMetadata(kSecretMetadata, secret);
}

bool IsLoopbackListenAddress(const std::string& address) {
  std::string host = address;
  if (absl::StartsWith(host, "[")) {
    const size_t close = host.find(']');
    host = close == std::string::npos ? "" : host.substr(1, close - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));  // host:port (a bare v6 address has several colons).
  }
  if (host.empty()) return false;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return false;
  bool loopback = true;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    loopback &= LoopbackSockaddr(a->ai_addr);
  }
  freeaddrinfo(found);
  return loopback;
}

absl::Status CheckPrivateFile(const std::string& path, const std::string& what) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat(what, " ", path, " does not exist"));
    return absl::PermissionDeniedError(
        absl::StrCat(what, " ", path, " cannot be read: ", strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s %s is mode %04o: group and others may %s it. Fix: chmod 600 %s", what, path,
        st.st_mode & 07777, (st.st_mode & 044) != 0 ? "read" : "write", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  if (absl::Status s = CheckPrivateFile(path, "secret file"); !s.ok()) return s;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("secret file ", path, " cannot be read"));
  std::string line;
  std::getline(in, line);
  std::string secret(absl::StripAsciiWhitespace(line));
  if (secret.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("secret file ", path, " is empty"));
  }
  return secret;
}

int SecretFileExit(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return kExitNoInput;
    case absl::StatusCode::kPermissionDenied:
      return kExitNoPerm;
    default:
      return kExitDataErr;
  }
}

std::string NewSecret() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char bytes[32] = {};
  in.read(reinterpret_cast<char*>(bytes), sizeof(bytes));
  return Hex(bytes, sizeof(bytes));
}

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char mac[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &length);
  return Hex(mac, length);
}

std::string RankToken(const std::string& job_secret, const std::string& job_id, int rank) {
  return absl::StrCat(
      "r", rank, ".",
      HmacSha256Hex(job_secret, absl::StrCat("zerorun rank token v1\n", job_id, "\n", rank)));
}

int RankOfToken(const std::string& job_secret, const std::string& job_id, std::string_view token) {
  const size_t dot = token.find('.');
  int rank = -1;
  if (dot == std::string_view::npos || token.size() < 2 || token[0] != 'r' ||
      !absl::SimpleAtoi(absl::string_view(token.data() + 1, dot - 1), &rank) || rank < 0) {
    return -1;
  }
  return ConstantTimeEquals(token, RankToken(job_secret, job_id, rank)) ? rank : -1;
}

}  // namespace zerorun
