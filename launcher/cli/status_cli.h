// `zerorun status`, `zerorun stop` and `zerorun report`: clients of a running job's Coordinator,
// found through the job records (job_record.h).
#ifndef ZERORUN_LAUNCHER_CLI_STATUS_CLI_H_
#define ZERORUN_LAUNCHER_CLI_STATUS_CLI_H_

#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "security/tls.h"
#include "zerorun/v1/coordinator.pb.h"

namespace zerorun::launcher {

// Prints the job (the only running one when `job_id` is empty; a list when several run) as a
// table or JSON; with `watch`, again every second until the job ends. A finished job prints its
// final status. When the launcher died, the node agents (reached with `agent_auth`) answer for
// their ranks, and once none runs the record gets its final status ("launcher lost"). Returns
// 0, 66 for an unknown job, 69 when neither the coordinator nor any agent answers.
int StatusCommand(const std::string& job_id, bool json, bool watch, const ClientAuth& agent_auth,
                  std::ostream& out, std::ostream& err);

// Asks the job's coordinator to stop it with `signal` (0: SIGTERM, then SIGKILL after the
// grace period); when the launcher died, signals the ranks through the node agents directly.
// Returns 0, 66 or 69.
int StopCommand(const std::string& job_id, int signal, const ClientAuth& agent_auth,
                std::ostream& err);

// `zerorun jobs`: the jobs recorded here, newest first (at most `limit`; 0: all), with their
// state (running, succeeded, failed, lost: the launcher died unrecorded), exit code and end.
int JobsCommand(bool json, int limit, std::ostream& out);

// One heartbeat/step report for a rank, for programs that do not link libzerorun: reads
// ZERORUN_COORDINATOR, ZERORUN_JOB_SECRET and RANK from the environment the launcher gave it.
// Returns 0, 2 when the environment lacks them, 69 when the coordinator does not answer.
int ReportCommand(const v1::RankReport& report, std::ostream& err);

// The status table, with the elapsed time at `now` and, when the ranks reported the run's total
// steps, the slowest rank's progress as a bar and the ETA at the average pace so far.
std::string FormatJobStatus(const v1::JobStatusReply& status, absl::Time now = absl::Now());

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_STATUS_CLI_H_
