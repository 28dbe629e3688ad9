// The job controller: launch, watch, propagate the first failure, summarize.
#include "job.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/exit_codes.h"
#include "coordinator.h"
#include "dsconfig/config_json.h"
#include "endpoints.h"
#include "grpc_util.h"
#include "job_record.h"
#include "metrics.h"
#include "proc_util.h"
#include "rank_env.h"

namespace zerorun::launcher {
namespace {

std::string NewJobId() {
  const std::string stamp = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone());
  return absl::StrCat("zr-", stamp, "-", NewSecret().substr(0, 6));
}

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", signal);
}

// What the controller's loop waits on: events from the node watchers, their ends, signals.
struct Inbox {
  absl::Mutex mu;
  std::deque<std::pair<size_t, v1::RankEvent>> events ABSL_GUARDED_BY(mu);
  std::vector<std::pair<size_t, absl::Status>> finished ABSL_GUARDED_BY(mu);
  std::vector<int> signals ABSL_GUARDED_BY(mu);
  std::vector<std::string> notices ABSL_GUARDED_BY(mu);
};

constexpr size_t kLastLinesPerRank = 5;

class Controller {
 public:
  Controller(const RunOptions& options, AgentPool& agents, std::ostream& out, std::ostream& err)
      : opt_(options), agents_(agents), out_(out), err_(err) {}

  int Run();

 private:
  // What every node's launch gets, from the pre-flight report and the coordinator's endpoints.
  LaunchSpec MakeSpec(const PreflightReport& report, std::vector<NodeEndpoints> endpoints,
                      const std::string& job_secret) const;
  // After the last attempt (`attempt`): records the final status, stops `coordinator` and says
  // how the job ended; returns the exit code.
  int Finish(int attempt, grpc::Server* coordinator);
  // Launches attempt spec.attempt everywhere and runs it to its end; returns its exit code.
  int RunAttempt(const LaunchSpec& spec, JobRecord& record, Inbox& inbox);
  // Whether the attempt that just ended may be followed by another (--max-restarts).
  bool Restartable(int attempt, Inbox& inbox);
  void Say(const std::string& text) { err_ << "zerorun: " << text << std::endl; }
  void SignalAll(int signal);
  void BeginStop(int signal);
  void Handle(size_t node, const v1::RankEvent& event);
  void CheckHang();
  void AbandonSilentNodes();
  std::string Summary() const;

  const RunOptions& opt_;
  AgentPool& agents_;
  std::ostream& out_;
  std::ostream& err_;
  std::vector<Host> hosts_;
  std::vector<AgentClient*> clients_;
  std::vector<bool> lost_;  // Nodes declared lost: never waited on again.
  std::vector<bool> node_done_;
  // Per node: when it was last heard from, in ms since the epoch, and whether to give up on it.
  std::unique_ptr<std::atomic<int64_t>[]> heard_ms_;
  std::unique_ptr<std::atomic<bool>[]> abandon_;
  std::vector<std::thread> signallers_;
  std::map<int, std::deque<std::string>> last_lines_;  // Per rank, for the hang report.
  std::string job_id_;
  std::string agent_job_id_;  // The current attempt's id on the agents (AgentJobId).
  std::unique_ptr<JobState> state_;
  // Root cause: the first failure seen, or the first after it that is not only a lost peer
  // (kExitPeerFailed) (the events of one node are ordered; across nodes the
  // earliest timestamp wins).
  bool failed_ = false;
  v1::RankEvent root_;
  size_t root_node_ = 0;
  bool root_is_victim_ = false;  // The root cause so far is a rank that only lost a peer.
  bool sent_sigkill_ = false;    // A SIGKILL exit before this is not ours (e.g. the OOM killer).
  int exit_code_ = 0;
  bool stopping_ = false;
  absl::Time kill_at_ = absl::InfiniteFuture();
  absl::Time last_interrupt_ = absl::InfinitePast();
  int stopped_by_us_ = 0;      // Ranks ended by our SIGTERM/SIGKILL after the root cause.
  int failed_after_ = 0;       // Ranks that failed on their own after the root cause.
  int interrupted_by_ = 0;     // The signal, or stop request, that ended the attempt.
  bool user_stopped_ = false;  // A stop signal or 'zerorun stop' came: never restart.
  bool launch_failed_ = false;
};

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

LaunchSpec Controller::MakeSpec(const PreflightReport& report, std::vector<NodeEndpoints> endpoints,
                                const std::string& job_secret) const {
  LaunchSpec spec;
  spec.job_id = job_id_;
  spec.env = opt_.preflight.env.Entries();
  spec.zerorun_bin = worker::SelfExecutable();
  spec.head = opt_.preflight.command.head;
  spec.tail = opt_.preflight.command.tail;
  spec.device = opt_.preflight.device;
  spec.endpoints = std::move(endpoints);
  spec.master_port = opt_.master_port;
  spec.job_secret = job_secret;
  spec.no_local_rank = opt_.no_local_rank;
  spec.config_json = dsconfig::Dump(report.effective_config, 2);
  spec.log_dir = opt_.log_dir;
  spec.lease_ms = absl::ToInt64Milliseconds(opt_.lease);
  spec.reconnect_window_ms = absl::ToInt64Milliseconds(opt_.reconnect_window);
  spec.grace_ms = absl::ToInt64Milliseconds(opt_.grace);
  char cwd[4096] = {};
  if (getcwd(cwd, sizeof(cwd)) != nullptr) spec.cwd = cwd;
  spec.max_restarts = opt_.max_restarts;
  return spec;
}

int Controller::Finish(int attempt, grpc::Server* coordinator) {
  if (!failed_ && interrupted_by_ != 0) exit_code_ = 128 + interrupted_by_;
  v1::JobStatusReply final_status = state_->Snapshot();
  final_status.set_state(exit_code_ == 0 ? "succeeded" : "failed");
  final_status.set_ended_unix_ms(absl::ToUnixMillis(absl::Now()));
  final_status.set_exit_code(exit_code_);
  state_->SetJobState(final_status.state());
  (void)WriteFinalStatus(job_id_, final_status);
  // Status answers from the record from here on.
  coordinator->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  if (exit_code_ == 0) {
    Say(absl::StrCat("job ", job_id_, " succeeded",
                     final_status.attempt() > 0
                         ? absl::StrCat(" after ", final_status.attempt(), " restart(s)")
                         : "",
                     ": all ", final_status.world_size(), " rank(s) exited 0"));
  } else if (failed_ && exit_code_ != kExitNodeLost && exit_code_ != kExitHang) {
    err_ << "\nzerorun: job " << job_id_ << " FAILED (exit " << exit_code_ << ")"
         << (attempt > 0 ? absl::StrCat(" on attempt ", attempt, " of ", opt_.max_restarts + 1,
                                        " (--max-restarts)")
                         : "")
         << "\n  " << Summary() << "\n  other ranks: " << stopped_by_us_
         << " stopped by zerorun (SIGTERM/SIGKILL), " << failed_after_
         << " failed on their own after the root cause\n";
  } else {
    Say(absl::StrCat("job ", job_id_, " ended with exit ", exit_code_,
                     final_status.root_cause().empty() ? "" : ": ", final_status.root_cause()));
  }
  return exit_code_;
}

int Controller::Run() {
  // Stop signals are blocked in every thread (BlockStopSignals) and taken here from the start:
  // before the launch nothing runs anywhere, so Ctrl-C or SIGTERM ends zerorun at once; after
  // it they go to the job's loop, which stops every rank first.
  Inbox inbox;
  std::atomic<bool> launching{false};
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    const timespec tick{0, 100 * 1000 * 1000};
    while (!done) {
      const int sig = sigtimedwait(&stop, nullptr, &tick);
      if (sig <= 0) continue;
      if (!launching.load()) {
        const char message[] = "zerorun: stopped before the launch; nothing was started\n";
        (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
        _exit(128 + sig);
      }
      absl::MutexLock lock(&inbox.mu);
      inbox.signals.push_back(sig);
    }
  });
  struct JoinAtExit {
    std::atomic<bool>& done;
    std::thread& thread;
    ~JoinAtExit() {
      done = true;
      thread.join();
    }
  } join_at_exit{done, signal_thread};
  // A --job-id in use by a running job: refuse before anything is checked, written or signalled.
  if (JobRecord other; !opt_.job_id.empty() && JobIdInUse(opt_.job_id, &other)) {
    Say(absl::StrCat("job id ", opt_.job_id, " is in use by a running job (launcher pid ",
                     other.launcher_pid, ", ", other.world_size,
                     " rank(s)); nothing was started or stopped. Fix: choose another --job-id, "
                     "or 'zerorun stop ",
                     opt_.job_id, "' first"));
    return kExitUsage;
  }
  const PreflightReport report = RunPreflight(opt_.preflight, agents_);
  if (!report.ok()) {
    out_ << FormatTable(report);
    return report.exit_code;
  }
  for (const v1::Check& row : report.checks) {
    if (row.status() == v1::CHECK_STATUS_WARN || row.status() == v1::CHECK_STATUS_CRITICAL) {
      Say(absl::StrCat("preflight WARN ", row.node(), " ", row.check(), ": ", row.detail()));
    }
  }
  hosts_ = report.hosts;
  job_id_ = opt_.job_id.empty() ? NewJobId() : opt_.job_id;
  std::vector<RankSlot> slots;
  bool all_loopback = true;
  for (const Host& host : hosts_) {
    clients_.push_back(agents_.For(host));
    lost_.push_back(false);
    all_loopback &= agents_.Embedded(host) || IsUnixSocketAddress(host.address) ||
                    IsLoopbackListenAddress(host.address + ":0");
    for (size_t local = 0; local < host.slots.size(); ++local) {
      slots.push_back({static_cast<int>(slots.size()), static_cast<int>(local), host.name});
    }
  }
  state_ = std::make_unique<JobState>(job_id_, slots, opt_.heartbeat_timeout);

  // The coordinator: on loopback when every node is this machine, else on all interfaces.
  const std::string job_secret = NewSecret();
  CoordinatorService service(state_.get(), job_id_, job_secret);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(all_loopback ? "127.0.0.1:0" : "0.0.0.0:0",
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    Say("cannot start the coordinator service");
    return kExitSoftware;
  }
  std::unique_ptr<MetricsServer> metrics;  // Ends before the job's state does.
  if (opt_.metrics_port >= 0) {
    const std::string host = all_loopback ? "127.0.0.1" : "0.0.0.0";
    absl::StatusOr<std::unique_ptr<MetricsServer>> started = MetricsServer::Start(
        host, opt_.metrics_port, [this] { return FormatMetrics(state_->Snapshot()); });
    if (!started.ok()) {
      Say(std::string(started.status().message()));
      return kExitUnavailable;
    }
    metrics = *std::move(started);
    Say(absl::StrCat("metrics at http://", host, ":", metrics->port(), "/metrics"));
  }
  std::vector<bool> embedded, here;  // Here: ranks on this machine (embedded or UNIX socket).
  for (const Host& host : hosts_) {
    embedded.push_back(agents_.Embedded(host));
    here.push_back(embedded.back() || IsUnixSocketAddress(host.address));
  }
  absl::StatusOr<std::vector<NodeEndpoints>> endpoints =
      ResolveEndpoints(hosts_, here, port, opt_.master_addr);
  if (!endpoints.ok()) {
    Say(absl::StrCat("cannot reach the nodes: ", endpoints.status().message()));
    return kExitUnavailable;
  }
  // The record's address is the one `zerorun status` uses from this machine.
  const std::string coordinator = absl::StrCat("127.0.0.1:", port);
  JobRecord record{
      job_id_,          coordinator, job_secret, getpid(), absl::ToUnixMillis(absl::Now()),
      report.world_size};
  for (size_t i = 0; i < hosts_.size(); ++i) {
    record.nodes.push_back({hosts_[i].name, embedded[i] ? "" : clients_[i]->Where()});
  }
  record.agent_secret = opt_.agent_secret;

  LaunchSpec spec = MakeSpec(report, *std::move(endpoints), job_secret);
  state_->SetMaxRestarts(opt_.max_restarts);

  // From here on a stop signal is the job loop's to forward.
  launching.store(true);
  for (int attempt = 0;; ++attempt) {
    spec.attempt = attempt;
    exit_code_ = RunAttempt(spec, record, inbox);
    if (launch_failed_ || !Restartable(attempt, inbox)) break;
    const std::string cause = state_->Snapshot().root_cause();
    Say(absl::StrCat("attempt ", attempt, " failed (exit ", exit_code_, "): restarting the job on ",
                     hosts_.size(), " node(s), attempt ", attempt + 1, " of ",
                     opt_.max_restarts + 1, " (ZERORUN_RESTART_COUNT=", attempt + 1, ")\n  ",
                     cause));
    state_->Restart(exit_code_);
    failed_ = stopping_ = root_is_victim_ = sent_sigkill_ = false;
    exit_code_ = stopped_by_us_ = failed_after_ = 0;
    kill_at_ = absl::InfiniteFuture();
    last_lines_.clear();
  }
  if (launch_failed_ && spec.attempt == 0) return exit_code_;  // Nothing ran: no record.
  return Finish(spec.attempt, server.get());
}

}  // namespace

void BlockStopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
}

int RunJob(const RunOptions& options, AgentPool& agents, std::ostream& out, std::ostream& err) {
  return Controller(options, agents, out, err).Run();
}

}  // namespace zerorun::launcher
