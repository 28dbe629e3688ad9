// JobRunner: signal, the replay buffer, leases, status, eviction. Launching is in
// job_launch.cc, re-adoption and the per-rank monitor in job_monitor.cc.
#include "job_runner.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "proc_util.h"
#include "rank_supervisor.h"
#include "request_validation.h"

namespace zerorun::worker {

JobRunner::JobRunner(JobRunnerOptions options) : options_(std::move(options)) {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  hostname_ = name;
}

JobRunner::JobRunner(std::string state_dir)
    : JobRunner(JobRunnerOptions{.state_dir = std::move(state_dir)}) {}

JobRunner::~JobRunner() {
  std::vector<std::thread> monitors;
  {
    zerorun::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [id, job] : jobs_) {
      for (std::thread& t : job->monitors) monitors.push_back(std::move(t));
    }
  }
  for (std::thread& t : monitors) t.join();
}

void JobRunner::Emit(Job* job, v1::RankEvent event) {
  event.set_index(job->next_index++);
  if (event.time_unix_ms() == 0) event.set_time_unix_ms(absl::ToUnixMillis(absl::Now()));
  event.set_node(hostname_);
  job->journal.Add(event);
  job->events.push_back(std::move(event));
  while (job->events.size() > job->capacity) {
    job->events.pop_front();
    ++job->first_index;
  }
}

void JobRunner::TouchLease(Job* job) {
  const absl::Time now = absl::Now();
  if (now - job->last_touch < absl::Milliseconds(500)) return;
  job->last_touch = now;
  TouchFile(job->dir + "/lease");
}

void JobRunner::Renew(const std::string& job_id) {
  zerorun::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  if (it->second->running > 0) TouchLease(it->second.get());
}

bool JobRunner::Running(const std::string& job_id) {
  zerorun::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second->running > 0;
}

std::optional<std::string> JobRunner::Owner(const std::string& job_id) {
  zerorun::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second->owner;
}

absl::StatusOr<int> JobRunner::Signal(const v1::SignalRequest& request) {
  if (absl::Status s = ValidateSignalRequest(request); !s.ok()) return s;
  zerorun::MutexLock lock(&mu_);
  auto it = jobs_.find(request.job_id());
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", request.job_id()));
  int signalled = 0;
  for (const Rank& rank : it->second->ranks) {
    const bool selected =
        request.ranks().empty() || std::find(request.ranks().begin(), request.ranks().end(),
                                             rank.spec.rank()) != request.ranks().end();
    // Until the supervisor records the exit, the rank is alive or an unreaped zombie: its pid
    // and group are still the rank's.
    if (!selected || !rank.running || ReadRankExit(rank.rank_dir, it->second->files).has_value())
      continue;
    if (ProcessIs(rank.pid, rank.start_ticks) && kill(-rank.pid, request.signal()) == 0) {
      ++signalled;
    }
  }
  return signalled;
}

JobRunner::WatcherGuard::WatcherGuard(JobRunner* runner, std::string job_id)
    : runner_(runner), job_id_(std::move(job_id)) {
  zerorun::MutexLock lock(&runner_->mu_);
  auto it = runner_->jobs_.find(job_id_);
  if (it == runner_->jobs_.end()) return;
  ++it->second->watchers;
  it->second->expect_watcher_until = absl::InfinitePast();
}

JobRunner::WatcherGuard::~WatcherGuard() {
  zerorun::MutexLock lock(&runner_->mu_);
  auto it = runner_->jobs_.find(job_id_);
  if (it != runner_->jobs_.end() && it->second->watchers > 0) --it->second->watchers;
}

absl::Status JobRunner::WaitEvents(const std::string& job_id, int64_t from_index,
                                   absl::Duration timeout, std::vector<v1::RankEvent>* events,
                                   bool* done) {
  zerorun::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  Job* job = it->second.get();
  job->acked = std::max(job->acked, from_index);
  struct Args {
    Job* job;
    int64_t from;
    const bool* stop;
  } args{job, from_index, &shutting_down_};
  mu_.AwaitWithTimeout(
      zerorun::Condition(
          +[](Args* a) { return a->job->next_index > a->from || a->job->running == 0 || *a->stop; },
          &args),
      timeout);
  if (from_index < job->first_index) {
    // The reader fell behind a chatty rank: say what it missed and where it is, and go on from
    // the oldest event kept (a console gap must never end the job).
    v1::RankEvent gap;
    gap.set_kind(v1::RankEvent::KIND_GAP);
    gap.set_index(job->first_index - 1);
    gap.set_time_unix_ms(absl::ToUnixMillis(absl::Now()));
    gap.set_node(hostname_);
    gap.set_text(absl::StrCat(
        job->first_index - from_index,
        " event(s) were dropped from zerorund's replay buffer before they "
        "were read; the rank logs under ",
        job->ranks.empty()
            ? job->dir
            : job->ranks[0].stdout_path.substr(0, job->ranks[0].stdout_path.rfind("/rank_")),
        " hold every line"));
    events->push_back(std::move(gap));
    from_index = job->first_index;
  }
  for (int64_t i = from_index; i < job->next_index; ++i) {
    events->push_back(job->events[static_cast<size_t>(i - job->first_index)]);
  }
  *done = job->running == 0;
  return absl::OkStatus();
}

v1::AgentStatusReply JobRunner::Status(const std::string& job_id,
                                       const std::optional<std::string>& owner) {
  Evict();
  v1::AgentStatusReply reply;
  reply.set_hostname(hostname_);
  zerorun::MutexLock lock(&mu_);
  for (const auto& [id, job] : jobs_) {
    if (!job_id.empty() && id != job_id) continue;
    if (owner.has_value() && job->owner != *owner) continue;
    for (const Rank& rank : job->ranks) {
      v1::AgentRankStatus* s = reply.add_ranks();
      s->set_job_id(id);
      s->set_rank(rank.spec.rank());
      s->set_local_rank(rank.spec.local_rank());
      s->set_pid(rank.pid);
      s->set_running(rank.running);
      s->set_exit_code(rank.exit_code);
      s->set_signal(rank.signal);
      s->set_exit_code_unknown(rank.exit_code_unknown);
      s->set_end_reason(rank.end_reason);
    }
  }
  return reply;
}

void JobRunner::KillAll() {
  zerorun::MutexLock lock(&mu_);
  for (const auto& [id, job] : jobs_) {
    for (const Rank& rank : job->ranks) {
      if (rank.running && ProcessIs(rank.pid, rank.start_ticks)) kill(-rank.pid, SIGKILL);
    }
  }
  auto all_exited = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [id, job] : jobs_) {
      if (job->running > 0) return false;
    }
    return true;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!all_exited() && absl::Now() < deadline) {
    mu_.AwaitWithTimeout(zerorun::Condition(&shutting_down_), absl::Milliseconds(20));
  }
}

void JobRunner::Evict() {
  std::vector<std::unique_ptr<Job>> gone;
  {
    zerorun::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second->running == 0 && now - it->second->ended >= options_.retention) {
        gone.push_back(std::move(it->second));
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::unique_ptr<Job>& job : gone) {
    for (std::thread& t : job->monitors) t.join();
  }
  if (!gone.empty()) {
    gone.clear();
    malloc_trim(0);  // The freed replay buffers go back to the system, from every thread's arena.
  }
}

std::pair<size_t, size_t> JobRunner::MemoryFootprint() {
  Evict();
  zerorun::MutexLock lock(&mu_);
  size_t events = 0;
  for (const auto& [id, job] : jobs_) events += job->events.size();
  return {jobs_.size(), events};
}

}  // namespace zerorun::worker
