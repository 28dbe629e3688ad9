// One thread that answers the connections of a listening socket one at a time until destroyed:
// the small servers of the control plane (the UNIX credential socket, /metrics) share it.
#ifndef ZERORUN_PROTO_RPC_ACCEPT_LOOP_H_
#define ZERORUN_PROTO_RPC_ACCEPT_LOOP_H_

#include <functional>
#include <thread>

namespace zerorun {

class AcceptLoop {
 public:
  // Owns `listen_fd` (listening). `answer` gets each accepted connection on the loop's thread;
  // the connection is closed when it returns.
  AcceptLoop(int listen_fd, std::function<void(int client)> answer);
  // Wakes the thread, waits for it (an answer in progress finishes) and closes the socket.
  ~AcceptLoop();
  AcceptLoop(const AcceptLoop&) = delete;
  AcceptLoop& operator=(const AcceptLoop&) = delete;

 private:
  void Run();

  const int listen_fd_;
  const int wake_fd_;  // An eventfd: written to stop Run().
  const std::function<void(int)> answer_;
  std::thread thread_;
};

}  // namespace zerorun

#endif  // ZERORUN_PROTO_RPC_ACCEPT_LOOP_H_
