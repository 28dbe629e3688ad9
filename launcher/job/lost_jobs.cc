// Lost jobs: asking their node agents, and recording how they ended (lost_jobs.h).
#include "job/lost_jobs.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backends/agent_client.h"

namespace zerorun::launcher {

// Without its launcher, a job's ranks are known only to the node agents: each answers for its
// own. Ranks of the embedded agent ended with the launcher. The state is "orphaned" while some
// rank runs (their supervisors end them when the launcher's lease lapses).
absl::StatusOr<v1::JobStatusReply> AskAgents(const JobRecord& record,
                                             const ClientAuth& agent_auth) {
  v1::JobStatusReply reply;
  reply.set_job_id(record.job_id);
  reply.set_started_unix_ms(record.started_unix_ms);
  reply.set_world_size(record.world_size);
  int answered = 0, running = 0;
  std::vector<std::string> silent;
  for (const JobNode& node : record.nodes) {
    if (node.agent.empty()) continue;
    absl::StatusOr<v1::AgentStatusReply> agent =
        NewGrpcAgentClient(node.agent, AgentAuthFor(record, agent_auth))
            ->Status(record.agent_job_id);
    if (!agent.ok()) {
      silent.push_back(absl::StrCat(node.name, " (", agent.status().message(), ")"));
      continue;
    }
    ++answered;
    for (const v1::AgentRankStatus& r : agent->ranks()) {
      v1::RankStatus* s = reply.add_ranks();
      s->set_rank(r.rank());
      s->set_local_rank(r.local_rank());
      s->set_node(node.name);
      s->set_pid(r.pid());
      s->set_exit_code(r.exit_code());
      s->set_signal(r.signal());
      s->set_heartbeat_age_s(-1);
      s->set_step_age_s(-1);
      s->set_phase(r.end_reason());
      s->set_state(r.running()                             ? "running"
                   : r.exit_code_unknown()                 ? "unknown"
                   : r.exit_code() == 0 && r.signal() == 0 ? "exited"
                                                           : "killed");
      running += r.running() ? 1 : 0;
    }
  }
  const bool embedded = std::any_of(record.nodes.begin(), record.nodes.end(),
                                    [](const JobNode& n) { return n.agent.empty(); });
  if (answered == 0 && !embedded) {
    return absl::UnavailableError(
        absl::StrCat("the launcher of ", record.job_id, " (pid ", record.launcher_pid,
                     ") is gone and no node agent answered: ", absl::StrJoin(silent, "; ")));
  }
  reply.set_state(running > 0 ? "orphaned" : "failed");
  std::string cause = absl::StrCat("the launcher (pid ", record.launcher_pid,
                                   ") died without ending the job; rank states are the node "
                                   "agents' own");
  if (embedded) absl::StrAppend(&cause, "; the ranks of this machine ended with the launcher");
  if (!silent.empty()) absl::StrAppend(&cause, "; no answer from ", absl::StrJoin(silent, ", "));
  if (running > 0) {
    absl::StrAppend(&cause, "; ", running,
                    " rank(s) still run until their node ends them (the launcher's lease lapsed)");
  }
  reply.set_root_cause(cause);
  return reply;
}

bool RecordEndIfOver(const JobRecord& record, const ClientAuth& agent_auth) {
  if (record.finished || LauncherAlive(record)) return false;
  absl::StatusOr<v1::JobStatusReply> agents = AskAgents(record, agent_auth);
  return agents.ok() && agents->state() == "failed" &&
         WriteFinalStatus(record.job_id, *agents).ok();
}

int RecordLostJobs(const ClientAuth& agent_auth) {
  int recorded = 0;
  for (const JobRecord& job : AllJobs()) {
    recorded += RecordEndIfOver(job, agent_auth) ? 1 : 0;
  }
  return recorded;
}

}  // namespace zerorun::launcher
