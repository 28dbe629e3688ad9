// zerorun logs on a node: a job's record read back from its directory (job.json), and its rank
// log files streamed from it, so logs outlive the job in zerorund's memory and the launcher.
#ifndef ZERORUN_WORKER_LOG_READER_H_
#define ZERORUN_WORKER_LOG_READER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "zerorun/v1/agent_state.pb.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

// The record of `job_id` under `state_dir` (state_dir/<job_id>/job.json). InvalidArgument for an
// id that is not one (ValidJobId), NotFound naming the job and directory when there is none.
absl::StatusOr<v1::AgentJobRecord> ReadJobRecord(const std::string& state_dir,
                                                 const std::string& job_id);

// With follow: whether a rank of the job still runs (reading stops once none does and every file
// is read to its end), and whether the reader should give up (the client went away).
struct LogFollow {
  std::function<bool()> running = [] { return false; };
  std::function<bool()> cancelled = [] { return false; };
};

// Sends each rank's stdout then stderr (the ranks `request` names that the record holds: a rank
// of another node is none of this one's) from its start, in chunks of at most 64 KiB, to emit;
// emit returns false to stop. With request.follow(), then polls the files (every 100 ms) for
// what is appended. A file that is missing (never written) is skipped; one that is a link or
// not the job's user's own (record.run_as_uid) is never read: PermissionDenied naming it. With
// request.since_unix_ms(), each file starts at its first line the events journal timed at or
// after it (lines not journaled yet are newer); FailedPrecondition when the journal is gone.
absl::Status StreamLogs(const v1::AgentJobRecord& record, const v1::LogsRequest& request,
                        const LogFollow& follow,
                        const std::function<bool(const v1::LogChunk&)>& emit);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_LOG_READER_H_
