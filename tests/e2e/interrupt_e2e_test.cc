// e2e: a stop signal while zerorun is still checking (a node's agent accepts TCP and never
// answers, so its probe waits for its deadline) ends zerorun at once: nothing was started.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "support/child_process.h"
#include "support/temp_dir.h"

namespace zerorun::testing {
namespace {

// A listening socket on 127.0.0.9 that never accepts: the kernel completes the handshake and
// the gRPC client then waits for an HTTP/2 answer that never comes.
class SilentListener {
 public:
  SilentListener() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    inet_pton(AF_INET, "127.0.0.9", &addr.sin_addr);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(fd_, 16) == 0);
    socklen_t length = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

TEST_CASE("SIGTERM or Ctrl-C during pre-flight ends zerorun at once, nothing started",
          "[e2e][interrupt]") {
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    SilentListener silent;
    TempDir dir;
    const std::string hosts =
        dir.Write("hosts.yaml", "hosts:\n  - {name: silent, address: 127.0.0.9, agent_port: " +
                                    std::to_string(silent.port()) + ", slots: 1}\n");
    const std::string config = dir.Write("ds.json", R"({"train_micro_batch_size_per_gpu": 1})");
    ChildProcess zerorun(
        {ZR_TEST_ZERORUN, "--hostfile", hosts, "--config", config, "--device", "cpu", "/bin/true"},
        {{"ZR_HOME", dir.path() + "/home"}});
    usleep(800 * 1000);  // Well inside the probe's wait.
    const auto start = std::chrono::steady_clock::now();
    zerorun.Signal(sig);
    const int code = zerorun.Wait(10);
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO(zerorun.Output());
    CHECK(code == 128 + sig);
    CHECK(waited < 1.0);
    CHECK_THAT(zerorun.Output(), Catch::Contains("stopped before the launch; nothing was started"));
  }
}

}  // namespace
}  // namespace zerorun::testing
