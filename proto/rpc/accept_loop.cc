// The accept loop (see accept_loop.h).
#include "rpc/accept_loop.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace zerorun {

AcceptLoop::AcceptLoop(int listen_fd, std::function<void(int client)> answer)
    : listen_fd_(listen_fd), wake_fd_(eventfd(0, EFD_CLOEXEC)), answer_(std::move(answer)) {
  thread_ = std::thread([this] { Run(); });
}

AcceptLoop::~AcceptLoop() {
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void AcceptLoop::Run() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    answer_(client);
    close(client);
  }
}

}  // namespace zerorun
