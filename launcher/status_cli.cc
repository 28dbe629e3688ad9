// Status, stop and report clients.
#include "status_cli.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/exit_codes.h"
#include "dsconfig/config_json.h"
#include "grpc_util.h"
#include "job_record.h"
#include "nlohmann/json.hpp"
#include "zerorun/v1/coordinator.grpc.pb.h"

namespace zerorun::launcher {
namespace {

std::unique_ptr<v1::Coordinator::Stub> Connect(const std::string& address) {
  return v1::Coordinator::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

absl::StatusOr<v1::JobStatusReply> Query(const JobRecord& record) {
  grpc::ClientContext context;
  AttachSecret(&context, record.secret);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
  v1::JobStatusReply reply;
  const grpc::Status status = Connect(record.coordinator)->JobStatus(&context, {}, &reply);
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
                      {"ranks", nlohmann::json::array()}};
  for (const v1::RankStatus& r : status.ranks()) {
    j["ranks"].push_back({{"rank", r.rank()},
                          {"local_rank", r.local_rank()},
                          {"node", r.node()},
                          {"pid", r.pid()},
                          {"state", r.state()},
                          {"phase", r.phase()},
                          {"step", r.step()},
                          {"loss", r.loss()},
                          {"tokens_per_second", r.tokens_per_second()},
                          {"memory_bytes", r.memory_bytes()},
                          {"heartbeat_age_s", r.heartbeat_age_s()},
                          {"exit_code", r.exit_code()},
                          {"signal", r.signal()}});
  }
  return dsconfig::Dump(j, 2) + "\n";
}

// The job's status: live from its coordinator, or final from status.json.
absl::StatusOr<v1::JobStatusReply> Fetch(const std::string& job_id) {
  absl::StatusOr<JobRecord> record = ReadJobRecord(job_id);
  if (!record.ok()) return record.status();
  if (!record->finished) {
    absl::StatusOr<v1::JobStatusReply> live = Query(*record);
    if (live.ok() || !ReadFinalStatus(job_id).ok()) return live;
  }
  return ReadFinalStatus(job_id);
}

}  // namespace

std::string FormatJobStatus(const v1::JobStatusReply& s) {
  std::string out = absl::StrFormat(
      "job %s  %s  %d rank(s)  started %s\n", s.job_id(), s.state(), s.world_size(),
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(s.started_unix_ms()),
                       absl::UTCTimeZone()));
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
  if (!s.root_cause().empty()) absl::StrAppend(&out, s.root_cause(), "\n");
  return out;
}

int StatusCommand(const std::string& job_id, bool json, bool watch, std::ostream& out,
                  std::ostream& err) {
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
    absl::StatusOr<v1::JobStatusReply> status = Fetch(id);
    if (!status.ok()) {
      err << "zerorun status: " << status.status().message() << "\n";
      return status.status().code() == absl::StatusCode::kNotFound ? kExitNoInput
                                                                   : kExitUnavailable;
    }
    out << (json ? ToJson(*status) : FormatJobStatus(*status)) << std::flush;
    const bool ended = status->state() == "succeeded" || status->state() == "failed";
    if (!watch || ended) return kExitOk;
    sleep(1);
    if (!json) out << "\n";
  }
}

int StopCommand(const std::string& job_id, int signal, std::ostream& err) {
  absl::StatusOr<JobRecord> record = ReadJobRecord(job_id);
  if (!record.ok()) {
    err << "zerorun stop: " << record.status().message() << "\n";
    return kExitNoInput;
  }
  grpc::ClientContext context;
  AttachSecret(&context, record->secret);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
  v1::StopRequest request;
  request.set_signal(signal);
  v1::StopReply reply;
  const grpc::Status status = Connect(record->coordinator)->Stop(&context, request, &reply);
  if (!status.ok()) {
    err << "zerorun stop: coordinator of " << job_id << " at " << record->coordinator
        << " did not answer: " << status.error_message() << "\n";
    return kExitUnavailable;
  }
  err << "zerorun stop: stop requested for job " << job_id << "\n";
  return kExitOk;
}

int ReportCommand(const v1::RankReport& report, std::ostream& err) {
  const char* coordinator = std::getenv("ZERORUN_COORDINATOR");
  const char* secret = std::getenv("ZERORUN_JOB_SECRET");
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
  const grpc::Status status = Connect(coordinator)->Report(&context, request, &reply);
  if (!status.ok()) {
    err << "zerorun report: " << status.error_message() << "\n";
    return kExitUnavailable;
  }
  return kExitOk;
}

}  // namespace zerorun::launcher
