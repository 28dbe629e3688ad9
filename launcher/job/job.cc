// The job controller: set-up (pre-flight, coordinator, record), restarts and the end; one
// attempt's launch and watch are in job_attempt.cc.
#include "job/job.h"

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
#include "cluster/cluster_ca.h"
#include "dsconfig/config_json.h"
#include "job/coordinator.h"
#include "job/endpoints.h"
#include "job/job_controller.h"
#include "job/job_record.h"
#include "job/launch_spec.h"
#include "job/metrics.h"
#include "proc_util.h"
#include "rpc/grpc_util.h"

namespace zerorun::launcher {
namespace job_internal {
namespace {

std::string NewJobId() {
  const std::string stamp = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone());
  return absl::StrCat("zr-", stamp, "-", NewSecret().substr(0, 6));
}

}  // namespace

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
  // It serves TLS only, with a certificate of the job's own CA, which reaches the ranks with
  // their launch (ZERORUN_COORDINATOR_CA) and `zerorun status` with the job's record.
  absl::StatusOr<EphemeralTls> tls = NewEphemeralTls(kCoordinatorTlsName);
  if (!tls.ok()) {
    Say(absl::StrCat("cannot make the coordinator's certificate: ", tls.status().message()));
    return kExitSoftware;
  }
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({tls->key_pem, tls->cert_pem});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(all_loopback ? "127.0.0.1:0" : "0.0.0.0:0",
                           grpc::SslServerCredentials(ssl), &port);
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
  record.coordinator_ca = tls->ca_pem;

  LaunchSpec spec = MakeSpec(report, *std::move(endpoints), job_secret);
  spec.coordinator_ca = tls->ca_pem;
  state_->SetMaxRestarts(opt_.max_restarts);
  state_->SetEngine(opt_.preflight.command.python() ? opt_.preflight.engine : "");

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

}  // namespace job_internal

void BlockStopSignals() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
}

int RunJob(const RunOptions& options, AgentPool& agents, std::ostream& out, std::ostream& err) {
  return job_internal::Controller(options, agents, out, err).Run();
}

}  // namespace zerorun::launcher
