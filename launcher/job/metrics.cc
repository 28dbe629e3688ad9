// Prometheus text exposition of a job's status, and the HTTP server for it (see metrics.h).
#include "job/metrics.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/exit_codes.h"
#include "rpc/accept_loop.h"

namespace zerorun::launcher {
namespace {

const std::vector<std::string>& JobStates() {
  static const std::vector<std::string> kStates = {"running", "stopping", "succeeded", "failed"};
  return kStates;
}

const std::vector<std::string>& RankStates() {
  static const std::vector<std::string> kStates = {"starting", "running", "stale",
                                                   "exited",   "failed",  "killed"};
  return kStates;
}

// A label value with \, " and newline escaped as the exposition format requires.
std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// A sample value: integers as integers, the rest with enough digits, NaN/Inf as Prometheus
// spells them.
std::string Value(double v) {
  if (v != v) return "NaN";
  if (v > 1e308) return "+Inf";
  if (v < -1e308) return "-Inf";
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 9e15 && v > -9e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buffer[64];
  for (int digits = 15; digits <= 17; ++digits) {  // The shortest that reads back the same.
    snprintf(buffer, sizeof(buffer), "%.*g", digits, v);
    if (std::strtod(buffer, nullptr) == v) break;
  }
  return buffer;
}

// One metric family: its header, then its samples.
class Family {
 public:
  Family(std::string* out, const std::string& name, const char* type, const char* help)
      : out_(out), name_(name) {
    absl::StrAppend(out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  void Sample(const std::string& labels, double value) {
    absl::StrAppend(out_, name_, "{", labels, "} ", Value(value), "\n");
  }

 private:
  std::string* out_;
  std::string name_;
};

// The known states, and `current` too when it is none of them.
std::vector<std::string> StatesWith(const std::vector<std::string>& known,
                                    const std::string& current) {
  std::vector<std::string> states = known;
  bool found = false;
  for (const std::string& s : known) found |= s == current;
  if (!found && !current.empty()) states.push_back(current);
  return states;
}

}  // namespace

std::string FailureCause(int exit_code) {
  if (exit_code == kExitNodeLost) return "node_lost";
  if (exit_code == kExitHang) return "hang";
  if (exit_code == kExitUnavailable) return "launch";
  if (exit_code > 128 && exit_code < 128 + 65) return "signal";
  return "exit";
}

std::string FormatMetrics(const v1::JobStatusReply& status) {
  std::string out;
  const std::string job = absl::StrCat("job_id=\"", Escape(status.job_id()), "\"");
  Family(&out, "zerorun_job_info", "gauge", "The job zerorun runs (always 1).").Sample(job, 1);
  {
    Family f(&out, "zerorun_job_state", "gauge", "1 for the job's state, 0 for the others.");
    for (const std::string& s : StatesWith(JobStates(), status.state())) {
      f.Sample(absl::StrCat(job, ",state=\"", Escape(s), "\""), s == status.state() ? 1 : 0);
    }
  }
  Family(&out, "zerorun_job_start_time_seconds", "gauge", "When the job started (Unix time).")
      .Sample(job, static_cast<double>(status.started_unix_ms()) / 1000.0);
  Family(&out, "zerorun_job_world_size", "gauge", "Ranks in the job.")
      .Sample(job, status.world_size());
  Family(&out, "zerorun_job_restarts_total", "counter",
         "Restarts of the whole job after a failure (--max-restarts).")
      .Sample(job, status.attempt());
  {
    std::map<std::string, int> causes = {
        {"exit", 0}, {"signal", 0}, {"hang", 0}, {"node_lost", 0}, {"launch", 0}};
    for (const v1::FailedAttempt& a : status.failed_attempts())
      ++causes[FailureCause(a.exit_code())];
    if (status.state() == "failed") {
      int final_code = 1;
      for (const v1::RankStatus& r : status.ranks()) {
        if (r.state() == "killed" && r.signal() > 0) final_code = 128 + r.signal();
      }
      ++causes[FailureCause(final_code)];
    }
    Family f(&out, "zerorun_job_failures_total", "counter",
             "Failed attempts of the job by cause: exit (a rank exited non-zero), signal (a rank "
             "was killed), hang, node_lost, launch.");
    for (const auto& [cause, count] : causes) {
      f.Sample(absl::StrCat(job, ",cause=\"", cause, "\""), count);
    }
  }
  auto rank_labels = [&](const v1::RankStatus& r) {
    return absl::StrCat(job, ",rank=\"", r.rank(), "\",node=\"", Escape(r.node()), "\"");
  };
  struct Gauge {
    const char* name;
    const char* help;
    std::function<bool(const v1::RankStatus&, double*)> value;
  };
  const std::vector<Gauge> gauges = {
      {"zerorun_rank_step", "The last step the rank reported.",
       [](const v1::RankStatus& r, double* v) { return *v = static_cast<double>(r.step()), true; }},
      {"zerorun_rank_loss", "The last loss the rank reported.",
       [](const v1::RankStatus& r, double* v) { return *v = r.loss(), true; }},
      {"zerorun_rank_tokens_per_second", "The rank's last reported throughput.",
       [](const v1::RankStatus& r, double* v) { return *v = r.tokens_per_second(), true; }},
      {"zerorun_rank_memory_bytes", "The rank's last reported memory use.",
       [](const v1::RankStatus& r, double* v) {
         return *v = static_cast<double>(r.memory_bytes()), true;
       }},
      {"zerorun_rank_heartbeat_age_seconds", "Seconds since the rank's last heartbeat.",
       [](const v1::RankStatus& r, double* v) {
         *v = r.heartbeat_age_s();
         return r.heartbeat_age_s() >= 0;
       }},
      {"zerorun_rank_step_age_seconds", "Seconds since the rank's step last advanced.",
       [](const v1::RankStatus& r, double* v) {
         *v = r.step_age_s();
         return r.step_age_s() >= 0;
       }},
      {"zerorun_rank_step_seconds", "Wall time of the rank's last step (libzerorun ranks).",
       [](const v1::RankStatus& r, double* v) {
         *v = r.step_times().seconds();
         return r.has_step_times();
       }},
      {"zerorun_rank_exit_code", "The rank's exit code, once it exited.",
       [](const v1::RankStatus& r, double* v) {
         *v = r.exit_code();
         return r.state() == "exited" || r.state() == "failed";
       }},
  };
  for (const Gauge& g : gauges) {
    Family f(&out, g.name, "gauge", g.help);
    for (const v1::RankStatus& r : status.ranks()) {
      double v = 0;
      if (g.value(r, &v)) f.Sample(rank_labels(r), v);
    }
  }
  {
    Family f(&out, "zerorun_rank_step_phase_seconds", "gauge",
             "Where the rank's last step went: compute, comm_wait (blocked on collectives), "
             "optimizer, io (blocked on NVMe swaps and checkpoints); the phases add up to "
             "zerorun_rank_step_seconds.");
    for (const v1::RankStatus& r : status.ranks()) {
      if (!r.has_step_times()) continue;
      const v1::StepTimes& t = r.step_times();
      const std::pair<const char*, double> phases[] = {{"compute", t.compute_s()},
                                                       {"comm_wait", t.comm_wait_s()},
                                                       {"optimizer", t.optimizer_s()},
                                                       {"io", t.io_s()}};
      for (const auto& [phase, seconds] : phases) {
        f.Sample(absl::StrCat(rank_labels(r), ",phase=\"", phase, "\""), seconds);
      }
    }
  }
  Family f(&out, "zerorun_rank_state", "gauge", "1 for the rank's state, 0 for the others.");
  for (const v1::RankStatus& r : status.ranks()) {
    for (const std::string& s : StatesWith(RankStates(), r.state())) {
      f.Sample(absl::StrCat(rank_labels(r), ",state=\"", Escape(s), "\""), s == r.state() ? 1 : 0);
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host, int port, std::function<std::string()> render) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string where = absl::StrCat(host, ":", port);
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot resolve ", where));
  }
  int fd = -1;
  std::string error = "no address";
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 16) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", where, ": ", error,
                                               ". Fix: another --metrics-port"));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  const int actual =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  std::unique_ptr<MetricsServer> server(new MetricsServer(actual, std::move(render)));
  server->loop_ =
      std::make_unique<AcceptLoop>(fd, [s = server.get()](int client) { s->Answer(client); });
  return server;
}

MetricsServer::MetricsServer(int port, std::function<std::string()> render)
    : port_(port), render_(std::move(render)) {}

MetricsServer::~MetricsServer() { loop_.reset(); }

void MetricsServer::Answer(int client) {
  const timeval timeout{2, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  std::string request;
  char buffer[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    const ssize_t n = recv(client, buffer, sizeof(buffer), 0);
    if (n <= 0) return;
    request.append(buffer, static_cast<size_t>(n));
  }
  if (request.find("\r\n\r\n") == std::string::npos) return;
  const std::string line = request.substr(0, request.find("\r\n"));
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  const bool get = absl::StartsWith(line, "GET "), head = absl::StartsWith(line, "HEAD ");
  const size_t path_start = line.find(' ') + 1;
  const std::string path = line.substr(path_start, line.find(' ', path_start) - path_start);
  if (!get && !head) {
    status = "405 Method Not Allowed";
    type = "text/plain";
    body = "only GET /metrics\n";
  } else if (path != "/metrics" && !absl::StartsWith(path, "/metrics?")) {
    status = "404 Not Found";
    type = "text/plain";
    body = "zerorun serves /metrics only\n";
  } else {
    body = render_();
  }
  std::string response =
      absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                   "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n");
  if (!head) response += body;
  for (size_t sent = 0; sent < response.size();) {
    const ssize_t n = send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace zerorun::launcher
