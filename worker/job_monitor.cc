// JobRunner's per-rank monitor (log lines, the supervisor's exit record) and re-adoption of the
// ranks an earlier zerorund started (Restore).
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cgroup.h"
#include "google/protobuf/util/json_util.h"
#include "job_runner.h"
#include "log_tail.h"
#include "proc_util.h"
#include "rank_supervisor.h"
#include "shm_leftovers.h"
#include "zerorun/v1/agent_state.pb.h"

namespace zerorun::worker {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
constexpr size_t kStderrTailLines = 20;
// An output event carries at most this much of its line (the rank log keeps all of it).
constexpr size_t kMaxEventText = 16 * 1024;

}  // namespace

void JobRunner::StartMonitors(Job* job) {
  for (size_t i = 0; i < job->ranks.size(); ++i) {
    if (job->ranks[i].running) job->monitors.emplace_back(&JobRunner::Monitor, this, job, i);
  }
}

void JobRunner::RankEnded(Job* job, Rank* rank, v1::RankEvent event) {
  rank->running = false;
  rank->exit_code = event.exit_code();
  rank->signal = event.signal();
  rank->exit_code_unknown = event.exit_code_unknown();
  event.set_kind(v1::RankEvent::KIND_EXITED);
  event.set_rank(rank->spec.rank());
  event.set_local_rank(rank->spec.local_rank());
  event.set_pid(rank->pid);
  std::string text = absl::StrJoin(rank->stderr_tail, "\n");
  if (!rank->end_reason.empty()) absl::StrAppend(&text, text.empty() ? "" : "\n", rank->end_reason);
  event.set_text(text);
  Emit(job, std::move(event));
  if (--job->running == 0) {
    job->ended = absl::Now();
    (void)job->journal.Flush();
    job->journal.Close();
    if (!job->cgroup.empty()) (void)KillAndRemoveCgroup(job->cgroup, [] {});
    (void)RemoveShmLeftovers(job->shm_prefix, job->files.uid);
  }
}

void JobRunner::AwaitWatcher(Job* job) {
  const auto released = [this, job]() ABSL_NO_THREAD_SAFETY_ANALYSIS {  // Called under mu_.
    return shutting_down_ || (job->watchers == 0 && absl::Now() >= job->expect_watcher_until) ||
           job->next_index - job->acked <= static_cast<int64_t>(job->capacity / 2);
  };
  // Woken when the watcher reads (acked moves) or goes; the timeout re-checks the expectation.
  while (!released()) mu_.AwaitWithTimeout(zerorun::Condition(&released), absl::Milliseconds(100));
}

void JobRunner::Monitor(Job* job, size_t rank_index) {
  Rank* rank = nullptr;
  std::string stdout_path, stderr_path;
  int64_t stdout_offset = 0, stderr_offset = 0;
  {
    zerorun::MutexLock lock(&mu_);
    rank = &job->ranks[rank_index];
    stdout_path = rank->stdout_path;
    stderr_path = rank->stderr_path;
    stdout_offset = rank->stdout_offset;
    stderr_offset = rank->stderr_offset;
  }
  // These fields are fixed once the monitor runs; only the monitor changes the rest.
  const std::string rank_dir = rank->rank_dir;
  const int supervisor = rank->supervisor_pid;
  const uint64_t supervisor_ticks = rank->supervisor_start_ticks;
  const bool child = rank->supervisor_is_child;
  const FileOwner files = job->files;  // Fixed for the job's life.
  auto open_log = [&files](const std::string& path) {
    absl::StatusOr<int> fd = OpenOwnedFile(path, files);
    return fd.ok() ? *fd : -1;
  };
  LogTail out(open_log(stdout_path), stdout_offset), err(open_log(stderr_path), stderr_offset);
  bool supervisor_gone = false;
  while (true) {
    std::optional<RankExit> exit = ReadRankExit(rank_dir, files);
    if (!exit.has_value() && !supervisor_gone) {
      supervisor_gone = child ? waitpid(supervisor, nullptr, WNOHANG) == supervisor
                              : !ProcessIs(supervisor, supervisor_ticks);
      if (supervisor_gone)
        exit = ReadRankExit(rank_dir, files);  // It may have written, then exited.
    }
    const bool over = exit.has_value() || supervisor_gone;
    v1::RankEvent ended;
    if (exit.has_value()) {
      ended.set_exit_code(exit->exit_code);
      ended.set_signal(exit->signal);
      ended.set_time_unix_ms(exit->time_unix_ms);  // The exit's own time, not when it was read.
      if (child && !supervisor_gone) waitpid(supervisor, nullptr, 0);  // It exits right after.
    } else if (supervisor_gone) {
      // Nobody can tell how the rank ends now: end it rather than leave it unsupervised.
      if (ProcessIs(rank->pid, rank->start_ticks)) kill(-rank->pid, SIGKILL);
      ended.set_exit_code(-1);
      ended.set_exit_code_unknown(true);
    }
    // Drain the logs in bounded batches (the last one flushes a final partial line when over).
    bool more = true;
    while (more) {
      {
        zerorun::MutexLock lock(&mu_);
        AwaitWatcher(job);
      }
      // Per rank: every monitor of the job adding a batch of both streams at once stays within
      // the half of the replay buffer AwaitWatcher keeps free.
      const size_t batch = std::max<size_t>(1, options_.replay_events_per_rank / 8);
      std::vector<std::pair<std::string, int64_t>> out_lines = out.Lines(over, batch);
      std::vector<std::pair<std::string, int64_t>> err_lines = err.Lines(over, batch);
      more = out.more() || err.more();
      zerorun::MutexLock lock(&mu_);
      for (int stream = 0; stream < 2; ++stream) {
        for (auto& [line, offset] : stream == 0 ? out_lines : err_lines) {
          if (stream == 1) {
            rank->stderr_tail.push_back(line);
            if (rank->stderr_tail.size() > kStderrTailLines) rank->stderr_tail.pop_front();
          }
          if (line.size() > kMaxEventText) {  // The memory a replay buffer holds is bounded.
            line.resize(kMaxEventText);
            line += " [cut: the whole line is in the rank log]";
          }
          v1::RankEvent event;
          event.set_kind(v1::RankEvent::KIND_OUTPUT);
          event.set_rank(rank->spec.rank());
          event.set_local_rank(rank->spec.local_rank());
          event.set_pid(rank->pid);
          event.set_is_stderr(stream == 1);
          event.set_text(std::move(line));
          event.set_log_offset(offset);
          Emit(job, std::move(event));
        }
      }
      (void)job->journal.Flush();
    }
    zerorun::MutexLock lock(&mu_);
    if (over) {
      if (exit.has_value()) {
        rank->end_reason = exit->reason.empty() ? "" : absl::StrCat("zerorund: ", exit->reason);
      } else {
        rank->end_reason = absl::StrCat("zerorund: the rank's supervisor (pid ", supervisor,
                                        ") died; the rank was killed, its exit code is unknown");
      }
      RankEnded(job, rank, std::move(ended));
      (void)job->journal.Flush();
      return;
    }
    (void)job->journal.Flush();
    if (shutting_down_) return;  // The rank keeps running; the next zerorund re-adopts it.
    mu_.AwaitWithTimeout(zerorun::Condition(&shutting_down_), kPollInterval);
  }
}

std::unique_ptr<JobRunner::Job> JobRunner::RestoreJob(const std::string& job_dir) {
  const std::optional<std::string> json = ReadSmallFile(job_dir + "/job.json");
  v1::AgentJobRecord record;
  if (!json.has_value() || !google::protobuf::util::JsonStringToMessage(*json, &record).ok()) {
    return nullptr;
  }
  auto job = std::make_unique<Job>();
  job->id = record.job_id();
  job->dir = job_dir;
  job->cgroup = record.cgroup();
  job->shm_prefix = record.shm_prefix();
  job->owner = record.owner();
  job->files = FileOwner::FromRecord(record.run_as_uid());
  job->expect_watcher_until = absl::Now() + absl::Seconds(10);  // The launcher reconnecting.
  job->capacity = options_.replay_events_per_rank * static_cast<size_t>(record.ranks_size());
  std::map<int, size_t> by_rank;
  for (const v1::AgentRankRecord& r : record.ranks()) {
    Rank rank;
    rank.spec.set_rank(r.rank());
    rank.spec.set_local_rank(r.local_rank());
    rank.pid = r.pid();
    rank.start_ticks = r.start_ticks();
    rank.supervisor_pid = r.supervisor_pid();
    rank.supervisor_start_ticks = r.supervisor_start_ticks();
    rank.stdout_path = r.stdout_path();
    rank.stderr_path = r.stderr_path();
    rank.rank_dir = r.rank_dir();
    by_rank[r.rank()] = job->ranks.size();
    job->ranks.push_back(std::move(rank));
  }
  // The journal gives the event numbering, what each rank reported last, and the replay buffer.
  const std::string journal = job_dir + "/events.journal";
  (void)EventJournal::Read(journal, [&](const v1::RankEvent& event) {
    job->next_index = event.index() + 1;
    job->events.push_back(event);
    if (job->events.size() > job->capacity) {
      job->events.pop_front();
    }
    auto it = by_rank.find(event.rank());
    if (it == by_rank.end()) return;
    Rank& rank = job->ranks[it->second];
    if (event.kind() == v1::RankEvent::KIND_EXITED) {
      rank.running = false;
      rank.exit_code = event.exit_code();
      rank.signal = event.signal();
      rank.exit_code_unknown = event.exit_code_unknown();
    } else if (event.kind() == v1::RankEvent::KIND_OUTPUT) {
      (event.is_stderr() ? rank.stderr_offset : rank.stdout_offset) = event.log_offset();
      if (event.is_stderr()) {
        rank.stderr_tail.push_back(event.text());
        if (rank.stderr_tail.size() > kStderrTailLines) rank.stderr_tail.pop_front();
      }
    }
  });
  job->first_index = job->next_index - static_cast<int64_t>(job->events.size());
  for (const Rank& rank : job->ranks) job->running += rank.running ? 1 : 0;
  if (job->running == 0 || !job->journal.Open(journal, false).ok()) return nullptr;
  return job;
}

int JobRunner::Restore() {
  if (!options_.adoptable) return 0;
  DIR* dir = opendir(options_.state_dir.c_str());
  if (dir == nullptr) return 0;
  std::vector<std::string> job_dirs;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') job_dirs.push_back(absl::StrCat(options_.state_dir, "/", e->d_name));
  }
  closedir(dir);
  int adopted = 0;
  for (const std::string& job_dir : job_dirs) {
    std::unique_ptr<Job> job = RestoreJob(job_dir);
    if (job == nullptr) continue;
    zerorun::MutexLock lock(&mu_);
    if (jobs_.count(job->id) > 0) continue;
    Job* raw = job.get();
    jobs_[raw->id] = std::move(job);
    StartMonitors(raw);
    ++adopted;
  }
  return adopted;
}

}  // namespace zerorun::worker
