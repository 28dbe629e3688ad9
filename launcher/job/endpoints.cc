// ResolveEndpoints: per-node addresses from the kernel's routing table.
#include "job/endpoints.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorun::launcher {

absl::StatusOr<std::string> LocalAddressToward(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), "9", &hints, &found); rc != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot resolve ", host, " to an IPv4 address: ", gai_strerror(rc)));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  std::string out;
  sockaddr_in local{};
  socklen_t length = sizeof(local);
  if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
    char text[INET_ADDRSTRLEN] = {};
    if (inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text)) != nullptr) out = text;
  }
  const int err = errno;
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  if (out.empty()) {
    return absl::UnavailableError(absl::StrCat("no route to ", host, ": ", std::strerror(err)));
  }
  return out;
}

absl::StatusOr<std::vector<NodeEndpoints>> ResolveEndpoints(const std::vector<Host>& hosts,
                                                            const std::vector<bool>& here,
                                                            int coordinator_port,
                                                            const std::string& master_addr) {
  std::vector<NodeEndpoints> out(hosts.size());
  bool all_local = true;
  int first_remote = -1;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (!here[i]) {
      all_local = false;
      if (first_remote < 0) first_remote = static_cast<int>(i);
    }
  }
  // The launcher's own address as the other nodes see it, for the ranks on this machine.
  std::string self = "127.0.0.1";
  if (!all_local) {
    absl::StatusOr<std::string> a = LocalAddressToward(hosts[first_remote].address);
    if (!a.ok())
      return absl::Status(a.status().code(), absl::StrCat("node ", hosts[first_remote].name, ": ",
                                                          a.status().message()));
    self = *a;
  }
  for (size_t i = 0; i < hosts.size(); ++i) {
    std::string toward = "127.0.0.1";
    if (!all_local && !here[i]) {
      absl::StatusOr<std::string> a = LocalAddressToward(hosts[i].address);
      if (!a.ok()) {
        return absl::Status(a.status().code(),
                            absl::StrCat("node ", hosts[i].name, ": ", a.status().message()));
      }
      toward = *a;
    } else if (!all_local) {
      toward = self;
    }
    out[i].node_addr = here[i] ? self : hosts[i].address;
    out[i].coordinator = absl::StrCat(toward, ":", coordinator_port);
  }
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (!master_addr.empty()) {
      out[i].master_addr = master_addr;
    } else if (here[0] && !here[i]) {
      out[i].master_addr = out[i].coordinator.substr(0, out[i].coordinator.rfind(':'));
    } else {
      out[i].master_addr = out[0].node_addr;
    }
  }
  return out;
}

}  // namespace zerorun::launcher
