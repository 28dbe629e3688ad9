// `zerorun [run]`: pre-flight on every node, then launch through the node agents, serve the
// coordinator, stream rank output, and end the whole job on the first failure with one
// root-cause summary.
#ifndef ZERORUN_LAUNCHER_JOB_JOB_H_
#define ZERORUN_LAUNCHER_JOB_JOB_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "backends/agent_client.h"
#include "preflight/preflight.h"

namespace zerorun::launcher {

struct RunOptions {
  PreflightOptions preflight;
  std::string job_id;              // Empty: zr-<date>-<time>-<random>.
  std::string log_dir;             // Per-rank logs on each node; empty: the agent's job directory.
  std::string agent_secret;        // The backend's own agents' secret (LaunchBackend), or empty.
  std::vector<int> console_ranks;  // Ranks whose output is shown; empty: all.
  absl::Duration grace = absl::Seconds(10);  // SIGTERM -> SIGKILL.
  absl::Duration heartbeat_timeout = absl::Seconds(30);
  // Control-plane faults: a node's ranks end when the launcher's lease lapses this long; a
  // node silent this long is lost; a node whose zerorund is down may come back within the
  // window; a rank without heartbeat or step progress this long hangs the job (zero: off).
  absl::Duration lease = absl::Seconds(10);
  absl::Duration node_timeout = absl::Seconds(9);
  absl::Duration reconnect_window = absl::Seconds(30);
  absl::Duration hang_timeout = absl::ZeroDuration();
  // A rank that fails or hangs restarts the whole job (every node) up to this many times, each
  // attempt's root cause kept; a lost node or a stop asked by the user is never restarted.
  int max_restarts = 0;
  std::string master_addr;  // Empty: the first host's address.
  int master_port = 29500;
  bool no_local_rank = false;
  // Prometheus metrics (metrics.h) on this port while the job runs (0: any free one; -1: off).
  int metrics_port = -1;
};

// Runs the job to its end and returns zerorun's exit code: 0 when every rank exited 0; the
// pre-flight exit code when a check failed (nothing started); 1 when the first failing rank
// exited non-zero; 128+N when it died of signal N (or zerorun was stopped by signal N); 69 when
// a launch failed; 200 when a node was lost (silent for node_timeout, or its zerorund gone for the
// reconnect window); 201 when a rank hung (hang_timeout). Ranks' output goes to `out`/`err` with a
// "[rank N host]" prefix; zerorun's own lines go to `err`.
// With max_restarts, a failed attempt is followed by the next one and the exit code is the last
// attempt's.
// SIGINT/SIGTERM/SIGHUP received by the process are forwarded to every rank (SIGTERM, then SIGKILL
// after the grace period); a second SIGINT within a second kills at once. The caller must have
// blocked SIGINT and SIGTERM in every thread (BlockStopSignals) before any thread was started.
int RunJob(const RunOptions& options, AgentPool& agents, std::ostream& out, std::ostream& err);

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (and the threads it starts later).
void BlockStopSignals();

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_JOB_JOB_H_
