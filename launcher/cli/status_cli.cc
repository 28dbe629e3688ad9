// Status, stop and report clients.
#include "cli/status_cli.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backends/agent_client.h"
#include "base/exit_codes.h"
#include "dsconfig/config_json.h"
#include "job/job_record.h"
#include "job/lost_jobs.h"
#include "nlohmann/json.hpp"
#include "rpc/grpc_util.h"
#include "zerorun/v1/coordinator.grpc.pb.h"

namespace zerorun::launcher {
namespace {

std::unique_ptr<v1::Coordinator::Stub> Connect(const std::string& address,
                                               const std::string& ca_pem) {
  return v1::Coordinator::NewStub(CoordinatorChannel(address, ca_pem));
}

absl::StatusOr<v1::JobStatusReply> Query(const JobRecord& record) {
  grpc::ClientContext context;
  AttachSecret(&context, record.secret);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
  v1::JobStatusReply reply;
  const grpc::Status status =
      Connect(record.coordinator, record.coordinator_ca)->JobStatus(&context, {}, &reply);
  if (!status.ok()) return FromGrpcStatus(status);
  return reply;
}

// JSON with numbers as numbers (protobuf's JSON mapping writes int64 as strings).
std::string ToJson(const v1::JobStatusReply& status) {
  nlohmann::json j = {{"job_id", status.job_id()},
                      {"state", status.state()},
                      {"started_unix_ms", status.started_unix_ms()},
                      {"world_size", status.world_size()},
                      {"root_cause", status.root_cause()},
                      {"attempt", status.attempt()},
                      {"max_restarts", status.max_restarts()},
                      {"engine", status.engine()},
                      {"ended_unix_ms", status.ended_unix_ms()},
                      {"exit_code", status.exit_code()},
                      {"failed_attempts", nlohmann::json::array()},
                      {"ranks", nlohmann::json::array()}};
  for (const v1::FailedAttempt& a : status.failed_attempts()) {
    j["failed_attempts"].push_back({{"attempt", a.attempt()},
                                    {"exit_code", a.exit_code()},
                                    {"root_cause", a.root_cause()},
                                    {"ended_unix_ms", a.ended_unix_ms()}});
  }
  for (const v1::RankStatus& r : status.ranks()) {
    j["ranks"].push_back({{"rank", r.rank()},
                          {"local_rank", r.local_rank()},
                          {"node", r.node()},
                          {"total_steps", r.total_steps()},
                          {"pid", r.pid()},
                          {"state", r.state()},
                          {"phase", r.phase()},
                          {"step", r.step()},
                          {"loss", r.loss()},
                          {"tokens_per_second", r.tokens_per_second()},
                          {"memory_bytes", r.memory_bytes()},
                          {"heartbeat_age_s", r.heartbeat_age_s()},
                          {"exit_code", r.exit_code()},
                          {"signal", r.signal()},
                          {"step_times", nullptr}});
    if (r.has_step_times()) {
      const v1::StepTimes& t = r.step_times();
      j["ranks"].back()["step_times"] = {{"seconds", t.seconds()},
                                         {"compute_s", t.compute_s()},
                                         {"comm_wait_s", t.comm_wait_s()},
                                         {"optimizer_s", t.optimizer_s()},
                                         {"io_s", t.io_s()}};
    }
  }
  return dsconfig::Dump(j, 2) + "\n";
}

// The job's status: live from its coordinator, final from status.json, or from the node agents
// when the launcher died. A reader: the record is left as it is (the next launcher, or `zerorun
// stop`, records how a lost job ended: job/lost_jobs.h).
absl::StatusOr<v1::JobStatusReply> Fetch(const std::string& job_id, const ClientAuth& agent_auth) {
  absl::StatusOr<JobRecord> record = ReadJobRecord(job_id);
  if (!record.ok()) return record.status();
  if (record->finished) return ReadFinalStatus(job_id);
  absl::StatusOr<v1::JobStatusReply> live = Query(*record);
  if (live.ok()) return live;
  if (absl::StatusOr<v1::JobStatusReply> final = ReadFinalStatus(job_id); final.ok()) return final;
  if (LauncherAlive(*record)) return live;
  return AskAgents(*record, agent_auth);
}

}  // namespace

namespace {

std::string Ago(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  if (s < 120) return absl::StrCat(s, " s ago");
  if (s < 7200) return absl::StrCat(s / 60, " min ago");
  if (s < 172800) return absl::StrCat(s / 3600, " h ago");
  return absl::StrCat(s / 86400, " days ago");
}

// 12s, 4m10s, 1h02m.
std::string Span(absl::Duration d) {
  const int64_t s = std::max<int64_t>(0, absl::ToInt64Seconds(d));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

// "elapsed 1m23s  step 120/500 (24%) [#####...............]  ETA 4m23s" while the job runs.
std::string ProgressLine(const v1::JobStatusReply& s, absl::Time now) {
  const absl::Duration elapsed = now - absl::FromUnixMillis(s.started_unix_ms());
  std::string line = absl::StrCat("elapsed ", Span(elapsed));
  int64_t total = 0, step = -1;
  for (const v1::RankStatus& r : s.ranks()) {
    total = std::max(total, r.total_steps());
    step = step < 0 ? r.step() : std::min(step, r.step());
  }
  if (total > 0 && step >= 0) {
    const int64_t done = std::min(step, total);
    const int width = 20;
    const int filled = static_cast<int>(width * done / total);
    absl::StrAppendFormat(&line, "  step %d/%d (%d%%) [%s%s]", step, total, 100 * done / total,
                          std::string(filled, '#'), std::string(width - filled, '.'));
    if (done > 0 && done < total) {
      absl::StrAppend(&line, "  ETA ", Span(elapsed * static_cast<double>(total - done) / done));
    }
  }
  return line + "\n";
}

// The last step's breakdown of the ranks that report one, and the slowest rank's communication
// wait: "are my ranks waiting on communication" answered.
std::string StepTimesTable(const v1::JobStatusReply& s) {
  std::string out;
  const v1::RankStatus* most = nullptr;
  for (const v1::RankStatus& r : s.ranks()) {
    if (!r.has_step_times() || r.step_times().seconds() <= 0) continue;
    if (out.empty()) {
      absl::StrAppendFormat(&out, "%-5s %10s %8s %10s %10s %6s   (last step)\n", "RANK",
                            "STEP TIME", "COMPUTE", "COMM WAIT", "OPTIMIZER", "IO");
    }
    const v1::StepTimes& t = r.step_times();
    auto pct = [&](double part) { return absl::StrFormat("%.0f%%", 100 * part / t.seconds()); };
    absl::StrAppendFormat(&out, "%-5d %9.3fs %8s %10s %10s %6s\n", r.rank(), t.seconds(),
                          pct(t.compute_s()), pct(t.comm_wait_s()), pct(t.optimizer_s()),
                          pct(t.io_s()));
    if (most == nullptr || t.comm_wait_s() / t.seconds() >
                               most->step_times().comm_wait_s() / most->step_times().seconds()) {
      most = &r;
    }
  }
  if (most != nullptr) {
    const v1::StepTimes& t = most->step_times();
    absl::StrAppendFormat(&out, "most waiting on communication: rank %d, %.0f%% of its step\n",
                          most->rank(), 100 * t.comm_wait_s() / t.seconds());
  }
  return out;
}

}  // namespace

std::string FormatJobStatus(const v1::JobStatusReply& s, absl::Time now) {
  std::string out = absl::StrFormat(
      "job %s  %s  %d rank(s)  started %s", s.job_id(), s.state(), s.world_size(),
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(s.started_unix_ms()),
                       absl::UTCTimeZone()));
  if (!s.engine().empty()) absl::StrAppend(&out, "  engine ", s.engine());
  if (s.ended_unix_ms() > 0) {
    absl::StrAppendFormat(&out, "  ended %s, exit %d (ran %.1f s)",
                          Ago(now - absl::FromUnixMillis(s.ended_unix_ms())), s.exit_code(),
                          (s.ended_unix_ms() - s.started_unix_ms()) / 1000.0);
  }
  out += "\n";
  if (s.ended_unix_ms() == 0 && !s.ranks().empty()) out += ProgressLine(s, now);
  if (s.max_restarts() > 0) {
    absl::StrAppendFormat(&out, "attempt %d of %d (--max-restarts %d)\n", s.attempt(),
                          s.max_restarts() + 1, s.max_restarts());
  }
  absl::StrAppendFormat(&out, "%-5s %-14s %-8s %-8s %8s %10s %12s %10s %9s  %s\n", "RANK", "HOST",
                        "PID", "STATE", "STEP", "LOSS", "TOKENS/S", "MEMORY", "HEARTBEAT", "EXIT");
  for (const v1::RankStatus& r : s.ranks()) {
    const std::string heartbeat =
        r.heartbeat_age_s() < 0 ? "-" : absl::StrFormat("%.1fs", r.heartbeat_age_s());
    const std::string exit =
        r.signal() != 0 ? absl::StrCat("signal ", r.signal())
                        : (r.state() == "exited" || r.state() == "failed" || r.state() == "killed"
                               ? absl::StrCat(r.exit_code())
                               : "");
    absl::StrAppendFormat(&out, "%-5d %-14s %-8d %-8s %8d %10.4f %12.1f %9.1fM %9s  %s\n", r.rank(),
                          r.node(), r.pid(), r.state(), r.step(), r.loss(), r.tokens_per_second(),
                          r.memory_bytes() / 1048576.0, heartbeat, exit);
  }
  out += StepTimesTable(s);
  if (!s.root_cause().empty()) absl::StrAppend(&out, s.root_cause(), "\n");
  for (const v1::FailedAttempt& a : s.failed_attempts()) {
    absl::StrAppendFormat(&out, "attempt %d failed (exit %d), restarted:\n  %s\n", a.attempt(),
                          a.exit_code(), a.root_cause());
  }
  return out;
}

int StatusCommand(const std::string& job_id, bool json, bool watch, const ClientAuth& agent_auth,
                  std::ostream& out, std::ostream& err) {
  std::string id = job_id;
  if (id.empty()) {
    const std::vector<JobRecord> jobs = RunningJobs();
    if (jobs.empty()) {
      err << "zerorun status: no running job in " << JobsDir() << "\n";
      return kExitNoInput;
    }
    if (jobs.size() > 1) {
      out << "running jobs (newest first):\n";
      for (const JobRecord& j : jobs) {
        out << "  " << j.job_id << "  " << j.world_size << " rank(s)  coordinator " << j.coordinator
            << "\n";
      }
      return kExitOk;
    }
    id = jobs.front().job_id;
  }
  // --watch is bounded by the job's life; a dead coordinator ends it too.
  while (true) {
    absl::StatusOr<v1::JobStatusReply> status = Fetch(id, agent_auth);
    if (!status.ok()) {
      err << "zerorun status: " << status.status().message() << "\n";
      return status.status().code() == absl::StatusCode::kNotFound ? kExitNoInput
                                                                   : kExitUnavailable;
    }
    // --watch in a terminal redraws one screen; into a file or pipe it appends.
    const bool redraw = watch && !json && &out == &std::cout && isatty(STDOUT_FILENO);
    if (redraw) out << "\033[H\033[2J";
    out << (json ? ToJson(*status) : FormatJobStatus(*status)) << std::flush;
    const bool ended = status->state() == "succeeded" || status->state() == "failed";
    if (!watch || ended) return kExitOk;
    sleep(1);
    if (!json && !redraw) out << "\n";
  }
}

int StopCommand(const std::string& job_id, int signal, const ClientAuth& agent_auth,
                std::ostream& err) {
  absl::StatusOr<JobRecord> record = ReadJobRecord(job_id);
  if (!record.ok()) {
    err << "zerorun stop: " << record.status().message() << "\n";
    return kExitNoInput;
  }
  if (absl::StatusOr<v1::JobStatusReply> final = ReadFinalStatus(job_id); final.ok()) {
    err << "zerorun stop: job " << job_id << " already ended"
        << (final->ended_unix_ms() > 0
                ? absl::StrCat(" ", Ago(absl::Now() - absl::FromUnixMillis(final->ended_unix_ms())),
                               " (", final->state(), ", exit ", final->exit_code(), ")")
                : absl::StrCat(" (", final->state(), ")"))
        << ": nothing to stop\n";
    return kExitOk;
  }
  grpc::ClientContext context;
  AttachSecret(&context, record->secret);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
  v1::StopRequest request;
  request.set_signal(signal);
  v1::StopReply reply;
  const grpc::Status status =
      Connect(record->coordinator, record->coordinator_ca)->Stop(&context, request, &reply);
  if (status.ok()) {
    err << "zerorun stop: stop requested for job " << job_id << "\n";
    return kExitOk;
  }
  if (LauncherAlive(*record)) {
    err << "zerorun stop: coordinator of " << job_id << " at " << record->coordinator
        << " did not answer: " << status.error_message() << "\n";
    return kExitUnavailable;
  }
  // The launcher is gone: the node agents stop their own ranks (SIGTERM, SIGKILL after 10 s).
  int reached = 0, signalled = 0;
  for (const int sig : {signal != 0 ? signal : SIGTERM, signal != 0 ? 0 : SIGKILL}) {
    if (sig == SIGKILL) {
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (absl::Now() < deadline) {
        absl::StatusOr<v1::JobStatusReply> now = AskAgents(*record, agent_auth);
        if (!now.ok() || now->state() != "orphaned") break;
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    if (sig == 0) break;
    v1::SignalRequest kill_request;
    kill_request.set_job_id(record->agent_job_id);
    kill_request.set_signal(sig);
    for (const JobNode& node : record->nodes) {
      if (node.agent.empty()) continue;
      absl::StatusOr<int> n =
          NewGrpcAgentClient(node.agent, AgentAuthFor(*record, agent_auth))->Signal(kill_request);
      if (!n.ok()) {
        if (sig != SIGKILL)
          err << "zerorun stop: " << node.name << ": " << n.status().message() << "\n";
        continue;
      }
      reached += sig != SIGKILL ? 1 : 0;
      signalled += *n;
    }
  }
  if (reached == 0) {
    err << "zerorun stop: the launcher of " << job_id << " (pid " << record->launcher_pid
        << ") is gone and no node agent answered\n";
    return kExitUnavailable;
  }
  err << "zerorun stop: the launcher of " << job_id << " is gone; " << reached
      << " node agent(s) stopped " << signalled << " rank signal(s) directly\n";
  (void)RecordEndIfOver(*record, agent_auth);  // Once no rank runs: an actor records it.
  return kExitOk;
}

int JobsCommand(bool json, int limit, std::ostream& out) {
  std::vector<JobRecord> jobs = AllJobs();
  if (limit > 0 && static_cast<int>(jobs.size()) > limit) jobs.resize(static_cast<size_t>(limit));
  nlohmann::json list = nlohmann::json::array();
  std::string table = absl::StrFormat("%-28s %-10s %5s %6s  %-23s  %s\n", "JOB", "STATE", "EXIT",
                                      "RANKS", "STARTED", "ENDED");
  for (const JobRecord& job : jobs) {
    std::string state = "running", ended = "-", exit = "-";
    int exit_code = -1;
    int64_t ended_ms = 0;
    if (absl::StatusOr<v1::JobStatusReply> final = ReadFinalStatus(job.job_id); final.ok()) {
      state = final->state();
      ended_ms = final->ended_unix_ms();
      if (ended_ms > 0) {
        exit_code = final->exit_code();
        exit = absl::StrCat(exit_code);
        ended = Ago(absl::Now() - absl::FromUnixMillis(ended_ms));
      }
    } else if (!JobRunning(job)) {
      state = "lost";  // The launcher died and nothing recorded the end: 'zerorun status' asks.
    }
    absl::StrAppendFormat(
        &table, "%-28s %-10s %5s %6d  %-23s  %s\n", job.job_id, state, exit, job.world_size,
        absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(job.started_unix_ms),
                         absl::UTCTimeZone()),
        ended);
    list.push_back({{"job_id", job.job_id},
                    {"state", state},
                    {"exit_code", exit_code},
                    {"world_size", job.world_size},
                    {"started_unix_ms", job.started_unix_ms},
                    {"ended_unix_ms", ended_ms}});
  }
  out << (json ? list.dump(2) + "\n" : table);
  return kExitOk;
}

int ReportCommand(const v1::RankReport& report, std::ostream& err) {
  const char* coordinator = std::getenv("ZERORUN_COORDINATOR");
  const char* secret = std::getenv("ZERORUN_JOB_SECRET");
  const char* ca = std::getenv("ZERORUN_COORDINATOR_CA");
  const char* rank = std::getenv("RANK");
  int rank_value = 0;
  if (coordinator == nullptr || rank == nullptr || !absl::SimpleAtoi(rank, &rank_value)) {
    err << "zerorun report: ZERORUN_COORDINATOR and RANK are not set; run this from a rank "
           "started by zerorun\n";
    return kExitUsage;
  }
  v1::RankReport request = report;
  request.set_rank(rank_value);
  grpc::ClientContext context;
  AttachSecret(&context, secret ? secret : "");
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
  v1::ReportReply reply;
  const grpc::Status status = Connect(coordinator, ca ? ca : "")->Report(&context, request, &reply);
  if (!status.ok()) {
    err << "zerorun report: " << status.error_message() << "\n";
    return kExitUnavailable;
  }
  return kExitOk;
}

}  // namespace zerorun::launcher
