// `zerorun logs JOB [--rank R]... [--follow]`: a job's rank logs from every node, through the
// node agents (this machine's embedded ranks from their files), while or after it runs.
#ifndef ZERORUN_LAUNCHER_LOGS_CLI_H_
#define ZERORUN_LAUNCHER_LOGS_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "tls.h"

namespace zerorun::launcher {

// Prints every selected rank's output (all ranks when `ranks` is empty), line by line with a
// "[rank N node]" prefix: stdout lines to `out`, stderr lines to `err`; rank by rank, or with
// `follow` as it comes until the job's ranks have exited. Returns 0; 2 for a rank not in the job;
// 66 for an unknown job (or one whose files are gone); 69 when a node does not answer (the
// others are still printed); 77 when one refuses the credentials.
int LogsCommand(const std::string& job_id, const std::vector<int>& ranks, bool follow,
                const ClientAuth& agent_auth, std::ostream& out, std::ostream& err);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_LOGS_CLI_H_
