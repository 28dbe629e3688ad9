// The UNIX socket's credentials: a real credential socket answers with the caller's uid as the
// kernel reports it; forged, foreign, expired and malformed credentials are refused; socket
// paths are claimed without ever removing what is not a stale socket.
#include "security/local_cred.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"

namespace zerorun {
namespace {

using testing::TempDir;

int Mode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// A bound UNIX socket at `path`; listening when `listen_too`. Returns the fd.
int BoundSocket(const std::string& path, bool listen_too) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  if (listen_too) REQUIRE(listen(fd, 4) == 0);
  return fd;
}

TEST_CASE("The credential socket hands each caller a credential for its own uid",
          "[local_cred][auth]") {
  TempDir dir;
  const std::string path = dir.path() + "/zerorund.sock.cred";
  absl::StatusOr<std::unique_ptr<LocalCredentialServer>> server =
      LocalCredentialServer::Start(path);
  REQUIRE(server.ok());
  CHECK(Mode(path) == 0666);
  absl::StatusOr<std::string> credential = FetchLocalCredential(path);
  REQUIRE(credential.ok());
  absl::StatusOr<uid_t> uid = (*server)->Verify(*credential);
  REQUIRE(uid.ok());
  CHECK(*uid == getuid());
  // A second fetch works too (one credential per connection, the server keeps serving).
  CHECK(FetchLocalCredential(path).ok());
  server->reset();
  CHECK_FALSE(std::filesystem::exists(path));
  const absl::StatusOr<std::string> gone = FetchLocalCredential(path);
  CHECK(gone.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(gone.status().message()), Catch::Contains(path));
}

TEST_CASE("Forged, foreign, expired and malformed local credentials are refused",
          "[local_cred][auth]") {
  TempDir dir;
  auto server = LocalCredentialServer::Start(dir.path() + "/a.cred", absl::Seconds(60));
  auto other = LocalCredentialServer::Start(dir.path() + "/b.cred", absl::Seconds(60));
  REQUIRE(server.ok());
  REQUIRE(other.ok());
  const absl::Time now = absl::Now();
  const std::string good = (*server)->Issue(1234, now);
  REQUIRE((*server)->Verify(good, now).ok());
  CHECK(*(*server)->Verify(good, now) == 1234u);
  // Claiming root with a credential made for 1234: the MAC covers the uid.
  std::string as_root = good;
  as_root.replace(0, as_root.find('.'), "u0");
  auto refused = [&](const std::string& credential, const std::string& why, absl::Time at) {
    const absl::StatusOr<uid_t> got = (*server)->Verify(credential, at);
    CHECK(got.status().code() == absl::StatusCode::kUnauthenticated);
    CHECK_THAT(std::string(got.status().message()), Catch::Contains(why));
  };
  refused(as_root, "not issued by this zerorund", now);
  // Longer validity: the MAC covers the expiry too.
  std::string later = good;
  const size_t first = later.find('.'), second = later.find('.', first + 1);
  later.replace(first + 1, second - first - 1, "99999999999");
  refused(later, "not issued by this zerorund", now);
  refused((*other)->Issue(1234, now), "not issued by this zerorund", now);
  refused(good, "expired", now + absl::Seconds(61));
  for (const char* bad : {"", "u", "u12", "x1.2.3", "u1.2", "u-1.2.3", "u1.2.3.4"}) {
    INFO(bad);
    refused(bad, "malformed", now);
  }
}

TEST_CASE("A socket path is claimed only from a stale socket, never from a file or a live server",
          "[local_cred]") {
  TempDir dir;
  const std::string file = dir.Write("not-a-socket", "keep me\n");
  const absl::Status on_file = ClaimSocketPath(file);
  CHECK(on_file.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(on_file.message()),
             Catch::Contains(file) && Catch::Contains("is not a socket"));
  std::ifstream kept(file);
  std::string line;
  CHECK((std::getline(kept, line) && line == "keep me"));

  const std::string live = dir.path() + "/live.sock";
  const int live_fd = BoundSocket(live, true);
  CHECK(ClaimSocketPath(live).code() == absl::StatusCode::kUnavailable);
  CHECK(LocalCredentialServer::Start(live).status().code() == absl::StatusCode::kUnavailable);
  CHECK(std::filesystem::exists(live));
  close(live_fd);

  const std::string stale = dir.path() + "/stale.sock";
  close(BoundSocket(stale, false));  // What a killed process leaves behind.
  REQUIRE(std::filesystem::exists(stale));
  CHECK(ClaimSocketPath(stale).ok());
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(ClaimSocketPath(dir.path() + "/nothing.sock").ok());
}

}  // namespace
}  // namespace zerorun
