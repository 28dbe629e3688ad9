// One attempt of a job (see job_controller.h): launch on every node at once, watch the nodes'
// events, propagate the first failure to every rank, and name the root cause.
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/exit_codes.h"
#include "job/job_controller.h"

namespace zerorun::launcher::job_internal {

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", signal);
}

// In the background: the loop never waits on a node (an unreachable one takes the call's
// deadline); lost nodes are skipped, their supervisors end the ranks when the lease lapses.
void Controller::SignalAll(int signal) {
  sent_sigkill_ |= signal == SIGKILL;
  v1::SignalRequest request;
  request.set_job_id(agent_job_id_);
  request.set_signal(signal);
  for (size_t i = 0; i < clients_.size(); ++i) {
    if (lost_[i]) continue;
    AgentClient* client = clients_[i];
    signallers_.emplace_back([client, request] { (void)client->Signal(request); });
  }
}

void Controller::BeginStop(int signal) {
  if (stopping_ && signal != SIGKILL) return;
  stopping_ = true;
  state_->SetJobState("stopping");
  SignalAll(signal);
  kill_at_ = signal == SIGKILL ? absl::InfiniteFuture() : absl::Now() + opt_.grace;
}

void Controller::Handle(size_t node, const v1::RankEvent& event) {
  const Host& host = hosts_[node];
  switch (event.kind()) {
    case v1::RankEvent::KIND_STARTED:
      state_->RankStarted(event.rank(), event.pid());
      break;
    case v1::RankEvent::KIND_OUTPUT: {
      const bool shown = opt_.console_ranks.empty() ||
                         std::find(opt_.console_ranks.begin(), opt_.console_ranks.end(),
                                   event.rank()) != opt_.console_ranks.end();
      if (shown) {
        (event.is_stderr() ? err_ : out_)
            << "[rank " << event.rank() << " " << host.name << "] " << event.text() << "\n";
      }
      std::deque<std::string>& lines = last_lines_[event.rank()];
      lines.push_back(event.text());
      if (lines.size() > kLastLinesPerRank) lines.pop_front();
      break;
    }
    case v1::RankEvent::KIND_EXITED: {
      const bool bad = event.exit_code() != 0 || event.signal() != 0;
      const bool ours = stopping_ && (!failed_ || event.rank() != root_.rank());
      std::string state = bad ? (stopping_ ? "killed" : "failed") : "exited";
      if (bad && !failed_ && !stopping_) {
        failed_ = true;
        root_ = event;
        root_node_ = node;
        root_is_victim_ = event.signal() == 0 && event.exit_code() == kExitPeerFailed;
        exit_code_ = event.signal() != 0 ? 128 + event.signal() : 1;
        state = "failed";
        state_->SetRootCause(Summary());
        BeginStop(SIGTERM);
      } else if (bad && ours &&
                 (event.signal() == SIGTERM || (event.signal() == SIGKILL && sent_sigkill_))) {
        ++stopped_by_us_;
      } else if (bad && ours && root_is_victim_ && event.exit_code() != kExitPeerFailed) {
        // The first failure was a rank that lost a peer (kExitPeerFailed): this one, failing on
        // its own, is the cause. (Its exit is often read later: it took longer to exit.)
        ++failed_after_;
        root_ = event;
        root_node_ = node;
        root_is_victim_ = false;
        exit_code_ = event.signal() != 0 ? 128 + event.signal() : 1;
        state_->SetRootCause(Summary());
      } else if (bad && ours) {
        ++failed_after_;
      }
      state_->RankExited(event.rank(), event.exit_code(), event.signal(), state);
      break;
    }
    case v1::RankEvent::KIND_GAP:
      Say(absl::StrCat("node ", host.name, ": ", event.text()));
      break;
    default:
      break;
  }
}

// --hang-timeout: a rank that stopped heartbeating or stepping ends the job with 201, with what
// it was doing and what every rank inside a collective waits on.
void Controller::CheckHang() {
  if (opt_.hang_timeout <= absl::ZeroDuration() || failed_ || stopping_) return;
  std::vector<std::string> in_flight;
  const std::optional<HungRank> hung = state_->FindHung(opt_.hang_timeout, &in_flight);
  if (!hung) return;
  failed_ = true;
  exit_code_ = kExitHang;
  std::string text =
      absl::StrCat("rank ", hung->rank, " on ", hung->node, " hung: ", hung->why,
                   " (--hang-timeout ", absl::FormatDuration(opt_.hang_timeout), "); last step ",
                   hung->has_step ? absl::StrCat(hung->step) : std::string("none"),
                   hung->phase.empty() ? "" : absl::StrCat(", phase ", hung->phase),
                   hung->in_flight.empty() ? "" : absl::StrCat(", inside ", hung->in_flight));
  if (!in_flight.empty()) {
    absl::StrAppend(&text, "\n  collectives in flight:");
    for (const std::string& line : in_flight) absl::StrAppend(&text, "\n    ", line);
  }
  if (auto it = last_lines_.find(hung->rank); it != last_lines_.end() && !it->second.empty()) {
    absl::StrAppend(&text, "\n  last output of rank ", hung->rank, ":");
    for (const std::string& line : it->second) absl::StrAppend(&text, "\n    | ", line);
  }
  state_->SetRootCause(text);
  Say(text);
  BeginStop(SIGTERM);
}

// Once the job is ending and every node that still talks is done, a node silent for 2 s is not
// waited for (up to --node-timeout): the failure is reported now, and that node's ranks end when
// the lease lapses.
void Controller::AbandonSilentNodes() {
  if (!stopping_) return;
  const int64_t now = absl::ToUnixMillis(absl::Now());
  std::vector<size_t> silent;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (node_done_[i] || abandon_[i]) continue;
    if (now - heard_ms_[i] < 2000) return;  // Someone still talks: wait for it.
    silent.push_back(i);
  }
  for (size_t i : silent) {
    Say(
        absl::StrFormat("node %s silent for %.1f s while the job ends: not waiting for it (its "
                        "ranks end when the launcher's lease lapses)",
                        hosts_[i].name, static_cast<double>(now - heard_ms_[i]) / 1000.0));
    lost_[i] = true;
    abandon_[i] = true;
  }
}

std::string Controller::Summary() const {
  const Host& host = hosts_[root_node_];
  const std::string how =
      root_.signal() != 0
          ? absl::StrCat("killed by signal ", root_.signal(), " (", SignalName(root_.signal()), ")",
                         // The root cause is never a kill of ours: the OOM killer, most often.
                         root_.signal() == SIGKILL
                             ? ", not sent by zerorun: the kernel's OOM killer (a memory limit "
                               "or a full node; see dmesg) or another user"
                             : "")
          : absl::StrCat("exited with code ", root_.exit_code());
  std::string text = absl::StrCat(
      "root cause (first failure): ",
      absl::FormatTime("%Y-%m-%d %H:%M:%E3S UTC", absl::FromUnixMillis(root_.time_unix_ms()),
                       absl::UTCTimeZone()),
      "  host ", host.name, " (", host.address, ")  rank ", root_.rank(), " (local ",
      root_.local_rank(), ")  pid ", root_.pid(), "  ", how);
  if (!root_.text().empty()) {
    absl::StrAppend(&text, "\n  last stderr of rank ", root_.rank(), ":");
    for (absl::string_view line : absl::StrSplit(root_.text(), '\n')) {
      absl::StrAppend(&text, "\n    | ", line);
    }
  }
  return text;
}

int Controller::RunAttempt(const LaunchSpec& spec, JobRecord& record, Inbox& inbox) {
  const std::vector<v1::LaunchRequest> requests = BuildLaunchRequests(hosts_, spec);
  agent_job_id_ = AgentJobId(job_id_, spec.attempt);
  lost_.assign(hosts_.size(), false);
  // Launch everywhere at once; if any node refuses, stop what did start.
  std::vector<absl::Status> launched(hosts_.size());
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < hosts_.size(); ++i) {
      threads.emplace_back([&, i] { launched[i] = clients_[i]->Launch(requests[i]).status(); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (launched[i].ok()) continue;
    // Only the nodes that accepted this launch hold its ranks: a node that refused may run
    // another job under this id, and nothing of it is touched (nor is any record written).
    Say(absl::StrCat("launch failed on ", hosts_[i].name, ": ", launched[i].message(),
                     "; stopping the ranks that started"));
    v1::SignalRequest kill_request;
    kill_request.set_job_id(agent_job_id_);
    kill_request.set_signal(SIGKILL);
    for (size_t j = 0; j < hosts_.size(); ++j) {
      if (launched[j].ok()) (void)clients_[j]->Signal(kill_request);
    }
    launch_failed_ = true;
    return kExitUnavailable;
  }
  // Accepted everywhere: from now on the job is ours to record.
  record.agent_job_id = agent_job_id_;
  if (absl::Status s = WriteJobRecord(record); !s.ok()) Say(std::string(s.message()));
  state_->SetJobState("running");
  if (spec.attempt == 0) {
    Say(absl::StrCat("job ", job_id_, ": ", record.world_size, " rank(s) on ", hosts_.size(),
                     " node(s); 'zerorun status ", job_id_, "' from another terminal"));
  }

  std::vector<std::thread> watchers;
  node_done_.assign(hosts_.size(), false);
  heard_ms_ = std::make_unique<std::atomic<int64_t>[]>(hosts_.size());
  abandon_ = std::make_unique<std::atomic<bool>[]>(hosts_.size());
  for (size_t i = 0; i < hosts_.size(); ++i) {
    heard_ms_[i] = absl::ToUnixMillis(absl::Now());
    abandon_[i] = false;
  }
  for (size_t i = 0; i < hosts_.size(); ++i) {
    WatchPolicy policy;
    policy.heard = [this, i] { heard_ms_[i] = absl::ToUnixMillis(absl::Now()); };
    policy.abandon = &abandon_[i];
    policy.silence = opt_.node_timeout;
    policy.reconnect_window = opt_.reconnect_window;
    policy.notice = [&, i](const std::string& text) {
      absl::MutexLock lock(&inbox.mu);
      inbox.notices.push_back(absl::StrCat("node ", hosts_[i].name, ": ", text));
    };
    watchers.emplace_back([&, i, policy] {
      absl::Status s = clients_[i]->Watch(
          agent_job_id_,
          [&](const v1::RankEvent& event) {
            absl::MutexLock lock(&inbox.mu);
            inbox.events.emplace_back(i, event);
          },
          policy);
      absl::MutexLock lock(&inbox.mu);
      inbox.finished.emplace_back(i, s);
    });
  }

  size_t nodes_done = 0;
  while (nodes_done < hosts_.size()) {
    std::deque<std::pair<size_t, v1::RankEvent>> events;
    std::vector<std::pair<size_t, absl::Status>> finished;
    std::vector<int> signals;
    std::vector<std::string> notices;
    {
      absl::MutexLock lock(&inbox.mu);
      inbox.mu.AwaitWithTimeout(absl::Condition(
                                    +[](Inbox* in) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      return !in->events.empty() || !in->finished.empty() ||
                                             !in->signals.empty() || !in->notices.empty();
                                    },
                                    &inbox),
                                absl::Milliseconds(50));
      events.swap(inbox.events);
      finished.swap(inbox.finished);
      signals.swap(inbox.signals);
      notices.swap(inbox.notices);
    }
    for (const std::string& text : notices) Say(text);
    // Across nodes, the earliest event first, so the root cause is the first failure in time.
    std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
      return a.second.time_unix_ms() < b.second.time_unix_ms();
    });
    for (const auto& [node, event] : events) Handle(node, event);
    for (const auto& [node, status] : finished) {
      ++nodes_done;
      node_done_[node] = true;
      if (status.ok()) continue;
      lost_[node] = true;
      if (abandon_[node]) continue;
      if (failed_) {
        Say(absl::StrCat("node ", hosts_[node].name, " lost: ", status.message()));
        continue;
      }
      failed_ = true;  // The node is lost: its ranks' fate is unknown.
      root_node_ = node;
      exit_code_ = kExitNodeLost;
      state_->SetRootCause(absl::StrCat("node ", hosts_[node].name, " lost: ", status.message()));
      Say(absl::StrCat("node ", hosts_[node].name, " lost: ", status.message()));
      BeginStop(SIGTERM);
    }
    for (int sig : signals) {
      user_stopped_ = true;
      const absl::Time now = absl::Now();
      if (sig == SIGINT && now - last_interrupt_ < absl::Seconds(1)) {
        Say("second Ctrl-C: killing every rank now");
        BeginStop(SIGKILL);
      } else {
        Say(absl::StrCat("received ", SignalName(sig),
                         ": stopping every rank (SIGTERM, SIGKILL "
                         "after ",
                         absl::FormatDuration(opt_.grace), "; Ctrl-C again to kill now)"));
        if (interrupted_by_ == 0 && !failed_) interrupted_by_ = sig;
        BeginStop(SIGTERM);
      }
      if (sig == SIGINT) last_interrupt_ = now;
    }
    if (std::optional<int> request = state_->TakeStopRequest()) {
      Say("stop requested through 'zerorun stop'");
      if (interrupted_by_ == 0 && !failed_) interrupted_by_ = *request ? *request : SIGTERM;
      user_stopped_ = true;
      BeginStop(*request ? *request : SIGTERM);
    }
    CheckHang();
    AbandonSilentNodes();
    if (absl::Now() >= kill_at_) {
      Say(absl::StrCat("grace period of ", absl::FormatDuration(opt_.grace),
                       " over: SIGKILL to the ranks still running"));
      kill_at_ = absl::InfiniteFuture();
      SignalAll(SIGKILL);
    }
  }
  for (std::thread& t : watchers) t.join();
  for (std::thread& t : signallers_) t.join();
  signallers_.clear();
  return exit_code_;
}

bool Controller::Restartable(int attempt, Inbox& inbox) {
  if (attempt >= opt_.max_restarts || !failed_ || exit_code_ == kExitNodeLost) return false;
  absl::MutexLock lock(&inbox.mu);  // A stop that came while the attempt ended wins.
  return !user_stopped_ && inbox.signals.empty();
}

}  // namespace zerorun::launcher::job_internal
