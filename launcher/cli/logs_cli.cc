// zerorun logs (see logs_cli.h).
#include "cli/logs_cli.h"

#include <signal.h>

#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "backends/agent_client.h"
#include "base/env.h"
#include "base/exit_codes.h"
#include "job/job_record.h"
#include "log_reader.h"

namespace zerorun::launcher {
namespace {

// Cuts chunks into lines per (rank, stream) and prints them with their prefix.
class LinePrinter {
 public:
  LinePrinter(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}
  void Add(const std::string& node, const v1::LogChunk& chunk) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string& partial = partial_[{node, chunk.rank(), chunk.stream()}];
    partial += chunk.data();
    size_t start = 0;
    for (size_t end; (end = partial.find('\n', start)) != std::string::npos; start = end + 1) {
      Print(node, chunk.rank(), chunk.stream(), partial.substr(start, end - start));
    }
    partial.erase(0, start);
  }
  // What is left without a newline at the end of a file.
  void Flush() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, partial] : partial_) {
      if (!partial.empty()) Print(std::get<0>(key), std::get<1>(key), std::get<2>(key), partial);
      partial.clear();
    }
  }

 private:
  void Print(const std::string& node, int rank, const std::string& stream,
             const std::string& line) {
    (stream == "stderr" ? err_ : out_) << "[rank " << rank << " " << node << "] " << line << "\n";
  }
  std::ostream& out_;
  std::ostream& err_;
  std::mutex mu_;
  std::map<std::tuple<std::string, int, std::string>, std::string> partial_;
};

}  // namespace

absl::StatusOr<int64_t> ParseSince(const std::string& text, absl::Time now) {
  absl::Duration ago;
  absl::Time at;
  std::string ignored;
  if (absl::ParseDuration(text, &ago) && ago >= absl::ZeroDuration()) {
    at = now - ago;
  } else if (!absl::ParseTime(absl::RFC3339_full, text, &at, &ignored) &&
             !absl::ParseTime("%Y-%m-%d %H:%M:%S", text, absl::UTCTimeZone(), &at, &ignored)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--since '", text,
        "' is neither a duration (90s, 10m, 1h30m) nor a time (2026-12-02T10:00:00Z, or "
        "\"2026-12-02 10:00:00\" in UTC)"));
  }
  if (at > now) {
    return absl::InvalidArgumentError(
        absl::StrCat("--since '", text, "' is in the future; nothing was written then yet"));
  }
  return std::max<int64_t>(1, absl::ToUnixMillis(at));
}

int LogsCommand(const std::string& job_id, const std::vector<int>& ranks, bool follow,
                int64_t since_unix_ms, const ClientAuth& agent_auth, std::ostream& out,
                std::ostream& err) {
  absl::StatusOr<JobRecord> record = ReadJobRecord(job_id);
  if (!record.ok()) {
    err << "zerorun logs: " << record.status().message() << "\n";
    return kExitNoInput;
  }
  for (int rank : ranks) {
    if (rank < 0 || rank >= record->world_size) {
      err << "zerorun logs: job " << job_id << " has ranks 0-" << record->world_size - 1
          << "; there is no rank " << rank << "\n";
      return kExitUsage;
    }
  }
  v1::LogsRequest request;
  request.set_job_id(record->agent_job_id.empty() ? job_id : record->agent_job_id);
  for (int rank : ranks) request.add_ranks(rank);
  request.set_follow(follow);
  request.set_since_unix_ms(since_unix_ms);
  LinePrinter printer(out, err);
  std::mutex mu;
  int exit_code = kExitOk;
  auto node_logs = [&](const JobNode& node) {
    absl::Status s;
    if (node.agent.empty()) {
      // The embedded agent's ranks: their files on this machine, followed while the launcher
      // (their parent) lives.
      absl::StatusOr<v1::AgentJobRecord> local =
          worker::ReadJobRecord(ZerorunHome() + "/agent", request.job_id());
      s = local.status();
      if (local.ok()) {
        worker::LogFollow alive;
        const int pid = record->launcher_pid;
        alive.running = [pid] { return pid > 0 && kill(pid, 0) == 0; };
        s = worker::StreamLogs(*local, request, alive, [&](const v1::LogChunk& chunk) {
          printer.Add(node.name, chunk);
          return true;
        });
      }
    } else {
      s = NewGrpcAgentClient(node.agent, AgentAuthFor(*record, agent_auth))
              ->Logs(request, [&](const v1::LogChunk& chunk) {
                printer.Add(node.name, chunk);
                return true;
              });
    }
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      err << "zerorun logs: node " << node.name << ": " << s.message() << "\n";
      const int code = s.code() == absl::StatusCode::kNotFound             ? kExitNoInput
                       : s.code() == absl::StatusCode::kFailedPrecondition ? kExitNoInput
                       : s.code() == absl::StatusCode::kUnauthenticated ||
                               s.code() == absl::StatusCode::kPermissionDenied
                           ? kExitNoPerm
                           : kExitUnavailable;
      if (exit_code == kExitOk) exit_code = code;
    }
  };
  if (follow) {
    std::vector<std::thread> threads;
    for (const JobNode& node : record->nodes) threads.emplace_back(node_logs, node);
    for (std::thread& t : threads) t.join();
  } else {
    for (const JobNode& node : record->nodes) node_logs(node);
  }
  printer.Flush();
  return exit_code;
}

}  // namespace zerorun::launcher
