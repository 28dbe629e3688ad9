// Where running jobs are found without flags: each launcher records its job in
// $ZR_HOME/jobs/<job_id>/job.json (mode 0600: it holds the job secret) and, when the job ends,
// its final status in status.json next to it.
#ifndef ZERORUN_LAUNCHER_JOB_JOB_RECORD_H_
#define ZERORUN_LAUNCHER_JOB_JOB_RECORD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "security/tls.h"
#include "zerorun/v1/coordinator.pb.h"

namespace zerorun::launcher {

// A node of the job and how to reach its agent: "host:port", or empty for the launcher's
// embedded agent (whose ranks end with the launcher).
struct JobNode {
  std::string name;
  std::string agent;
};

struct JobRecord {
  std::string job_id;
  std::string coordinator;  // host:port
  std::string secret;
  int launcher_pid = 0;
  int64_t started_unix_ms = 0;
  int world_size = 0;
  std::vector<JobNode> nodes;  // So status and stop reach the ranks without the launcher.
  std::string agent_job_id;    // The current attempt's id on the agents (empty: job_id).
  bool finished = false;       // status.json exists.
  // The job's own agents' secret when its backend started them (ssh, slurm): logs, status and
  // stop reach those agents with it instead of the user's credentials. Empty: resident agents.
  std::string agent_secret;
  std::string coordinator_ca;  // PEM of the CA the coordinator's TLS certificate is of.
};

// How to call `record`'s agents: with its agent_secret if it has one, else as `user`.
ClientAuth AgentAuthFor(const JobRecord& record, const ClientAuth& user);

// $ZR_HOME/jobs (default ~/.zerorun/jobs).
std::string JobsDir();

absl::Status WriteJobRecord(const JobRecord& record);
absl::Status WriteFinalStatus(const std::string& job_id, const v1::JobStatusReply& status);

// NotFound naming the job and the directory when there is no such record.
absl::StatusOr<JobRecord> ReadJobRecord(const std::string& job_id);
absl::StatusOr<v1::JobStatusReply> ReadFinalStatus(const std::string& job_id);

// Jobs whose launcher is still alive and that have not finished, newest first.
std::vector<JobRecord> RunningJobs();

// Every job recorded here, newest first.
std::vector<JobRecord> AllJobs();

// The launcher of `record` still runs (a pid another user owns counts as running).
bool LauncherAlive(const JobRecord& record);
// True while the job has not finished and its launcher lives.
bool JobRunning(const JobRecord& record);

// True when `job_id` has a record here, has not finished and its launcher is alive: the id is
// taken, and a launch under it must touch nothing (the record is returned in *record).
bool JobIdInUse(const std::string& job_id, JobRecord* record);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_JOB_RECORD_H_
