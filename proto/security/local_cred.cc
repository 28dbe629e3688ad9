// The credential socket and its credentials (see local_cred.h).
#include "security/local_cred.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rpc/accept_loop.h"
#include "security/auth.h"

namespace zerorun {
namespace {

// A UNIX stream socket connected to `path`, or -errno.
int ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

std::string Signed(uid_t uid, int64_t expiry) {
  return absl::StrCat("zerorun local credential v1\n", uid, "\n", expiry);
}

}  // namespace

std::string UnixSocketPath(absl::string_view target) {
  if (absl::StartsWith(target, "unix://")) return std::string(target.substr(7));
  if (absl::StartsWith(target, "unix:")) return std::string(target.substr(5));
  return "";
}

bool IsUnixPeer(absl::string_view peer) { return absl::StartsWith(peer, "unix:"); }

std::string CredentialSocketPath(const std::string& socket_path) { return socket_path + ".cred"; }

absl::Status ClaimSocketPath(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("socket path ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; zerorund does not replace it. Fix: ",
                     "remove it, or give another socket path"));
  }
  const int fd = ConnectUnix(path);
  if (fd >= 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "socket ", path, " is in use by a running process. Fix: stop it, or give another path"));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove the stale socket ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FetchLocalCredential(const std::string& path, absl::Duration timeout) {
  const int fd = ConnectUnix(path);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot get a local credential from ", path, ": ",
                                               std::strerror(-fd),
                                               " (is zerorund running on this machine?)"));
  }
  std::string answer;
  const absl::Time deadline = absl::Now() + timeout;
  char buffer[256];
  while (answer.find('\n') == std::string::npos && answer.size() < 1024) {
    pollfd p{fd, POLLIN, 0};
    const int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0 || poll(&p, 1, wait_ms) <= 0) break;
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = answer.find('\n');
  if (end == std::string::npos || end == 0) {
    return absl::UnavailableError(absl::StrCat("no local credential from ", path));
  }
  return answer.substr(0, end);
}

absl::StatusOr<std::unique_ptr<LocalCredentialServer>> LocalCredentialServer::Start(
    const std::string& path, absl::Duration lifetime) {
  if (absl::Status s = ClaimSocketPath(path); !s.ok()) return s;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is longer than ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      chmod(path.c_str(), 0666) != 0 || listen(fd, 64) != 0) {
    const std::string error = std::strerror(errno);
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat("cannot serve ", path, ": ", error));
  }
  std::unique_ptr<LocalCredentialServer> server(new LocalCredentialServer(path, lifetime));
  server->loop_ =
      std::make_unique<AcceptLoop>(fd, [s = server.get()](int client) { s->Answer(client); });
  return server;
}

LocalCredentialServer::LocalCredentialServer(std::string path, absl::Duration lifetime)
    : path_(std::move(path)), lifetime_(lifetime), key_(NewSecret()) {}

LocalCredentialServer::~LocalCredentialServer() {
  loop_.reset();  // No answer runs after this.
  unlink(path_.c_str());
}

void LocalCredentialServer::Answer(int client) const {
  // The kernel's word on who connected: what the client says about itself counts for nothing.
  ucred peer{};
  socklen_t length = sizeof(peer);
  if (getsockopt(client, SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0 && length == sizeof(peer)) {
    const std::string line = Issue(peer.uid) + "\n";
    (void)!send(client, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

std::string LocalCredentialServer::Issue(uid_t uid, absl::Time now) const {
  const int64_t expiry = absl::ToUnixSeconds(now + lifetime_);
  return absl::StrCat("u", uid, ".", expiry, ".", HmacSha256Hex(key_, Signed(uid, expiry)));
}

absl::StatusOr<uid_t> LocalCredentialServer::Verify(absl::string_view credential,
                                                    absl::Time now) const {
  const std::vector<absl::string_view> parts = absl::StrSplit(credential, '.');
  uint32_t uid = 0;
  int64_t expiry = 0;
  if (parts.size() != 3 || parts[0].size() < 2 || parts[0][0] != 'u' ||
      !absl::SimpleAtoi(parts[0].substr(1), &uid) || !absl::SimpleAtoi(parts[1], &expiry)) {
    return absl::UnauthenticatedError("malformed local credential");
  }
  if (!ConstantTimeEquals(std::string(parts[2]), HmacSha256Hex(key_, Signed(uid, expiry)))) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the local credential was not issued by this zerorund (forged, or from one that has "
        "restarted since): fetch a new one from ",
        path_));
  }
  if (absl::FromUnixSeconds(expiry) < now) {
    return absl::UnauthenticatedError(
        absl::StrCat("the local credential expired; fetch a new one from ", path_));
  }
  return static_cast<uid_t>(uid);
}

}  // namespace zerorun
