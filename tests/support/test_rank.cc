// A rank for launcher tests: records its environment, argv and pid, reports status, and on
// command exits with a code, dies of a signal, ignores SIGTERM and hangs, or sleeps.
//   --env-dir DIR      write DIR/rank_<RANK>.env (environment, then "argv: ...") and .pid
//   --run-ms M         run this long, then exit 0 (default 0)
//   --fail-rank R      rank R fails after --fail-after-ms (default 300):
//   --exit-code C      ... by exiting with C (default 3), or
//   --kill-self SIG    ... by raising SIG
//   --hang-rank R      rank R ignores SIGTERM and never exits on its own
//   --report           heartbeat every 100 ms and report a step every 50 ms
//   --report-ms M      stop reporting (and heartbeating) after M ms
//   --total-steps N    with --report: tell the coordinator the run takes N steps
//   --lines N          print N numbered lines to stdout at start
//   --tick-ms M        print "tick K of rank R" every M ms (K = 0, 1, ...)
//   --stall-rank R     rank R stops reporting steps after --stall-after-ms (default 500), but
//                      keeps its heartbeat (a hang inside the program)
//   --stamps           with --env-dir: write the start time and, on SIGTERM or failure, the
//                      exit time (CLOCK_REALTIME ns) to rank_<RANK>.start / .exit
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#include "zerorun/coordinator_client.h"

extern char** environ;

namespace {

std::string g_exit_stamp;  // Path of rank_<RANK>.exit, when --stamps.

int64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void WriteStamp(const std::string& path) {
  if (path.empty()) return;
  std::ofstream(path) << RealtimeNs() << "\n";
}

void OnTerm(int) {
  WriteStamp(g_exit_stamp);  // Benchmarks only: not async-signal-safe, good enough here.
  signal(SIGTERM, SIG_DFL);
  raise(SIGTERM);
}

}  // namespace

int main(int argc, char** argv) {
  std::string env_dir;
  int run_ms = 0, fail_rank = -1, fail_after_ms = 300, exit_code = 3, kill_self = 0;
  int hang_rank = -1, lines = 0, report_ms = -1, tick_ms = 0, stall_rank = -1, stall_after_ms = 500;
  bool report = false, stamps = false;
  int64_t total_steps = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--env-dir")
      env_dir = next();
    else if (a == "--run-ms")
      run_ms = std::atoi(next().c_str());
    else if (a == "--fail-rank")
      fail_rank = std::atoi(next().c_str());
    else if (a == "--fail-after-ms")
      fail_after_ms = std::atoi(next().c_str());
    else if (a == "--exit-code")
      exit_code = std::atoi(next().c_str());
    else if (a == "--kill-self")
      kill_self = std::atoi(next().c_str());
    else if (a == "--hang-rank")
      hang_rank = std::atoi(next().c_str());
    else if (a == "--report")
      report = true;
    else if (a == "--lines")
      lines = std::atoi(next().c_str());
    else if (a == "--stamps")
      stamps = true;
    else if (a == "--tick-ms")
      tick_ms = std::atoi(next().c_str());
    else if (a == "--stall-rank")
      stall_rank = std::atoi(next().c_str());
    else if (a == "--stall-after-ms")
      stall_after_ms = std::atoi(next().c_str());
    else if (a == "--total-steps")
      total_steps = std::atoll(next().c_str());
    else if (a == "--report-ms")
      report_ms = std::atoi(next().c_str());
  }
  const char* rank_text = std::getenv("RANK");
  const int rank = rank_text ? std::atoi(rank_text) : -1;
  if (!env_dir.empty()) {
    const std::string base = env_dir + "/rank_" + std::to_string(rank);
    {  // Whole or not at all: tests wait for the file to appear, then read it.
      std::ofstream env(base + ".env.tmp");
      for (char** e = environ; *e != nullptr; ++e) env << *e << "\n";
      env << "argv:";
      for (int i = 0; i < argc; ++i) env << " " << argv[i];
      env << "\n";
    }
    std::rename((base + ".env.tmp").c_str(), (base + ".env").c_str());
    std::ofstream(base + ".pid") << getpid() << "\n";
    if (stamps) {
      WriteStamp(base + ".start");
      g_exit_stamp = base + ".exit";
      signal(SIGTERM, OnTerm);
    }
  }
  for (int i = 0; i < lines; ++i) std::printf("line %d of rank %d\n", i, rank);
  std::fflush(stdout);
  if (rank == hang_rank) signal(SIGTERM, SIG_IGN);
  std::unique_ptr<zerorun::CoordinatorClient> client;
  if (report) {
    auto made = zerorun::CoordinatorClient::FromEnv();
    if (!made.ok()) {
      std::fprintf(stderr, "test_rank: %s\n", std::string(made.status().message()).c_str());
      return 2;
    }
    client = *std::move(made);
    client->SetPhase("train");
    if (total_steps > 0) client->SetTotalSteps(total_steps);
    client->StartHeartbeat(absl::Milliseconds(100));
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t step = 0, ticks = 0;
  while (true) {
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count();
    if (rank == fail_rank && elapsed >= fail_after_ms) {
      std::fprintf(stderr, "test_rank %d: failing on purpose\n", rank);
      std::fflush(stderr);
      WriteStamp(g_exit_stamp);
      if (kill_self != 0) raise(kill_self);
      return exit_code;
    }
    if (rank != hang_rank && elapsed >= run_ms) return 0;
    if (client && report_ms >= 0 && elapsed >= report_ms) client.reset();  // Goes silent.
    if (tick_ms > 0 && elapsed / tick_ms >= ticks) {
      std::printf("tick %lld of rank %d\n", static_cast<long long>(ticks++), rank);
      std::fflush(stdout);
    }
    const bool stalled = rank == stall_rank && elapsed >= stall_after_ms;
    if (client && !stalled && elapsed / 50 > step) {
      ++step;
      (void)client->ReportStep(step, 10.0 / static_cast<double>(step), 1000.0 * (rank + 1),
                               (rank + 1) * 1048576);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}
