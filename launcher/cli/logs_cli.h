// `zerorun logs JOB [--rank R]... [--follow] [--since T]`: a job's rank logs from every node,
// through the node agents (this machine's embedded ranks from their files), while or after it runs.
#ifndef ZERORUN_LAUNCHER_CLI_LOGS_CLI_H_
#define ZERORUN_LAUNCHER_CLI_LOGS_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/tls.h"

namespace zerorun::launcher {

// Prints every selected rank's output (all ranks when `ranks` is empty), line by line with a
// "[rank N node]" prefix: stdout lines to `out`, stderr lines to `err`; rank by rank, or with
// `follow` as it comes until the job's ranks have exited. Returns 0; 2 for a rank not in the job;
// 66 for an unknown job (or one whose files are gone); 69 when a node does not answer (the
// others are still printed); 77 when one refuses the credentials.
// With `since_unix_ms` > 0 only lines written from then on (ParseSince).
int LogsCommand(const std::string& job_id, const std::vector<int>& ranks, bool follow,
                int64_t since_unix_ms, const ClientAuth& agent_auth, std::ostream& out,
                std::ostream& err);

// --since's value as Unix ms: a duration before `now` ("90s", "10m", "1h30m") or a UTC time
// ("2026-12-02T10:00:00Z", RFC 3339 with any offset, or "2026-12-02 10:00:00" as `zerorun status`
// prints it). InvalidArgument naming the value and the forms otherwise, or for a future time.
absl::StatusOr<int64_t> ParseSince(const std::string& text, absl::Time now);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_LOGS_CLI_H_
