// Jobs whose launcher died before recording how they ended (`zerorun jobs` shows them "lost"):
// only the node agents know their ranks now. Readers (`zerorun status`, `jobs`) ask the agents
// and report without changing the record; writers record the end once no rank runs: the next
// launcher on this ZR_HOME (RecordLostJobs, beside its own job) and `zerorun stop`, which ends
// the ranks itself. Any thread; each call reaches the agents (3 s deadline per node).
#ifndef ZERORUN_LAUNCHER_JOB_LOST_JOBS_H_
#define ZERORUN_LAUNCHER_JOB_LOST_JOBS_H_

#include "absl/status/statusor.h"
#include "job/job_record.h"
#include "security/tls.h"
#include "zerorun/v1/coordinator.pb.h"

namespace zerorun::launcher {

// The job as its node agents see it: "orphaned" while a rank runs (its node ends it when the
// launcher's lease lapses), then "failed", with the root cause saying the launcher died.
// Unavailable when no agent answers and no rank ran on this machine.
absl::StatusOr<v1::JobStatusReply> AskAgents(const JobRecord& record, const ClientAuth& agent_auth);

// Writes `record`'s status.json when its launcher is gone and its agents say no rank runs;
// true if it did. Errors (no answer, a write that fails) leave the record as it was.
bool RecordEndIfOver(const JobRecord& record, const ClientAuth& agent_auth);

// RecordEndIfOver for every job under JobsDir() that is neither finished nor running; the
// number recorded.
int RecordLostJobs(const ClientAuth& agent_auth);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_LOST_JOBS_H_
