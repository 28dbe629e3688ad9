// Prometheus metrics of a running job: the coordinator's status rendered in the text exposition
// format (version 0.0.4), served over HTTP at /metrics on --metrics-port.
#ifndef ZERORUN_LAUNCHER_JOB_METRICS_H_
#define ZERORUN_LAUNCHER_JOB_METRICS_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "rpc/accept_loop.h"
#include "zerorun/v1/coordinator.pb.h"

namespace zerorun::launcher {

// The job's metrics, every family with # HELP and # TYPE, names zerorun_*, units in the names:
//   zerorun_job_info{job_id}                         1
//   zerorun_job_state{job_id,state}                  1 for the current state, 0 for the others
//   zerorun_job_start_time_seconds, zerorun_job_world_size, zerorun_job_restarts_total,
//   zerorun_job_failures_total{cause}                failed attempts (and the final failure) by
//                                                    cause: exit, signal, hang, node_lost, launch
//   zerorun_rank_step, _loss, _tokens_per_second, _memory_bytes, _heartbeat_age_seconds,
//   _step_age_seconds, _exit_code{job_id,rank,node}  (ages and exit codes only once known)
//   zerorun_rank_state{job_id,rank,node,state}       1 for the rank's state, 0 for the others
std::string FormatMetrics(const v1::JobStatusReply& status);

// The cause a zerorun exit code stands for in zerorun_job_failures_total.
std::string FailureCause(int exit_code);

// A minimal HTTP/1.1 server on one thread: GET /metrics answers render() as text/plain;
// version=0.0.4; any other path 404, any other method 405. One request per connection, requests
// over 8 KiB or slower than 2 s are dropped.
class MetricsServer {
 public:
  // Listens on host:port (port 0: any free port). Unavailable naming the address when it cannot.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& host, int port,
                                                              std::function<std::string()> render);
  ~MetricsServer();  // Stops serving and joins the thread.
  int port() const { return port_; }

 private:
  MetricsServer(int port, std::function<std::string()> render);
  void Answer(int client);

  const int port_;
  const std::function<std::string()> render_;
  std::unique_ptr<AcceptLoop> loop_;  // Last: it stops before the rest goes.
};

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_METRICS_H_
