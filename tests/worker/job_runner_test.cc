// JobRunner with real processes: environment, argv, per-rank logs, events in order, exit codes
// and signals, process-group signalling, and bad requests.
#include "job_runner.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "cgroup.h"
#include "support/child_process.h"
#include "support/temp_dir.h"

namespace zerorun::worker {
namespace {

using testing::TempDir;

v1::LaunchRequest Request(const std::string& job, const std::vector<std::string>& scripts) {
  v1::LaunchRequest r;
  r.set_job_id(job);
  for (size_t i = 0; i < scripts.size(); ++i) {
    v1::RankSpec* spec = r.add_ranks();
    spec->set_rank(static_cast<int>(i));
    spec->set_local_rank(static_cast<int>(i));
    for (const char* a : {"/bin/sh", "-c"}) spec->add_argv(a);
    spec->add_argv(scripts[i]);
    spec->add_env("ZR_TEST_VALUE=rank" + std::to_string(i));
  }
  return r;
}

// All events of `job` until every rank exited (bounded: 20 s).
std::vector<v1::RankEvent> Drain(JobRunner& runner, const std::string& job) {
  std::vector<v1::RankEvent> events;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i) {
    REQUIRE(runner
                .WaitEvents(job, static_cast<int64_t>(events.size()), absl::Milliseconds(200),
                            &events, &done)
                .ok());
  }
  REQUIRE(done);
  return events;
}

TEST_CASE("JobRunner runs ranks with their env, logs their output and reports exits",
          "[job_runner]") {
  TempDir dir;
  JobRunner runner(dir.path());
  v1::LaunchRequest request =
      Request("job-1", {"echo out $ZR_TEST_VALUE; echo err >&2; exit 0", "exit 7"});
  request.set_config_json("{\"stage\": 2}");
  absl::StatusOr<v1::LaunchReply> reply = runner.Launch(request);
  REQUIRE(reply.ok());
  REQUIRE(reply->pids_size() == 2);
  const std::vector<v1::RankEvent> events = Drain(runner, "job-1");
  for (size_t i = 0; i < events.size(); ++i) CHECK(events[i].index() == static_cast<int64_t>(i));
  int exits = 0;
  for (const v1::RankEvent& e : events) {
    if (e.kind() != v1::RankEvent::KIND_EXITED) continue;
    ++exits;
    CHECK(e.exit_code() == (e.rank() == 0 ? 0 : 7));
    CHECK(e.signal() == 0);
  }
  CHECK(exits == 2);
  CHECK(events.front().kind() == v1::RankEvent::KIND_STARTED);
  std::ifstream out(dir.path() + "/job-1/rank_0/stdout.log");
  std::stringstream text;
  text << out.rdbuf();
  CHECK(text.str() == "out rank0\n");
  std::ifstream config(reply->job_dir() + "/ds_config.json");
  std::stringstream config_text;
  config_text << config.rdbuf();
  CHECK(config_text.str() == "{\"stage\": 2}");
  for (int pid : reply->pids()) CHECK(testing::ProcessGone(pid));
}

TEST_CASE("JobRunner signals the whole process group of a rank", "[job_runner]") {
  TempDir dir;
  JobRunner runner(dir.path());
  // The rank's child (sleep) is in the rank's process group and must die too.
  absl::StatusOr<v1::LaunchReply> reply =
      runner.Launch(Request("job-2", {"sleep 30 & echo $! > " + dir.path() + "/child; wait"}));
  REQUIRE(reply.ok());
  pid_t child = 0;
  for (int i = 0; i < 200 && child == 0; ++i) {
    std::ifstream in(dir.path() + "/child");
    in >> child;
    usleep(10 * 1000);
  }
  REQUIRE(child > 0);
  v1::SignalRequest signal;
  signal.set_job_id("job-2");
  signal.set_signal(SIGTERM);
  absl::StatusOr<int> signalled = runner.Signal(signal);
  REQUIRE(signalled.ok());
  CHECK(*signalled == 1);
  const std::vector<v1::RankEvent> events = Drain(runner, "job-2");
  CHECK(events.back().kind() == v1::RankEvent::KIND_EXITED);
  CHECK(events.back().signal() == SIGTERM);
  for (int i = 0; i < 100 && !testing::ProcessGone(child); ++i) usleep(20 * 1000);
  CHECK(testing::ProcessGone(child));
  CHECK(*runner.Signal(signal) == 0);  // Nothing left running.
}

TEST_CASE("JobRunner rejects bad job ids, reused ids, empty argv and unknown jobs",
          "[job_runner]") {
  TempDir dir;
  JobRunner runner(dir.path());
  CHECK(runner.Launch(Request("../escape", {"true"})).status().code() ==
        absl::StatusCode::kInvalidArgument);
  v1::LaunchRequest empty = Request("job-3", {"true"});
  empty.mutable_ranks(0)->clear_argv();
  CHECK(runner.Launch(empty).status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(runner.Launch(Request("job-4", {"true"})).ok());
  CHECK(runner.Launch(Request("job-4", {"true"})).status().code() ==
        absl::StatusCode::kAlreadyExists);
  Drain(runner, "job-4");
  v1::SignalRequest unknown;
  unknown.set_job_id("nope");
  unknown.set_signal(SIGTERM);
  CHECK(runner.Signal(unknown).status().code() == absl::StatusCode::kNotFound);
  v1::SignalRequest bad_signal = unknown;
  bad_signal.set_signal(12345);
  CHECK_THAT(std::string(runner.Signal(bad_signal).status().message()),
             Catch::Contains("signal 12345 is outside 1-64"));
  // Strings exec would cut at a NUL, env entries that are not KEY=VALUE, repeated ranks.
  v1::LaunchRequest nul = Request("job-6", {"true"});
  nul.mutable_ranks(0)->add_argv(std::string("a\0b", 3));
  CHECK_THAT(std::string(runner.Launch(nul).status().message()), Catch::Contains("NUL"));
  v1::LaunchRequest env = Request("job-7", {"true"});
  env.mutable_ranks(0)->add_env("=x");
  CHECK_THAT(std::string(runner.Launch(env).status().message()), Catch::Contains("KEY=VALUE"));
  v1::LaunchRequest twice = Request("job-8", {"true"});
  *twice.add_ranks() = twice.ranks(0);
  CHECK_THAT(std::string(runner.Launch(twice).status().message()), Catch::Contains("given twice"));
  // A program that cannot be executed starts and exits 127 with the reason on stderr.
  v1::LaunchRequest missing = Request("job-5", {"true"});
  missing.mutable_ranks(0)->clear_argv();
  missing.mutable_ranks(0)->add_argv("/nonexistent/train");
  const absl::Status missing_status = runner.Launch(missing).status();
  INFO(missing_status.ToString());
  REQUIRE(missing_status.ok());
  const std::vector<v1::RankEvent> events = Drain(runner, "job-5");
  CHECK(events.back().exit_code() == 127);
  CHECK_THAT(events.back().text(), Catch::Contains("cannot execute /nonexistent/train"));
}

TEST_CASE("A rank's leftover children (ignoring SIGTERM) end with it", "[job_runner]") {
  TempDir dir;
  JobRunner runner(dir.path());
  const std::string pid_file = dir.path() + "/child.pid";
  // The rank starts a child that ignores SIGTERM, then exits 0 on its own.
  REQUIRE(
      runner
          .Launch(Request("job-left", {"/bin/sh", "-c",
                                       "trap '' TERM; (trap '' TERM; exec sleep 300) & echo $! > " +
                                           pid_file + "; exit 0"}))
          .ok());
  Drain(runner, "job-left");
  std::ifstream in(pid_file);
  pid_t child = 0;
  REQUIRE(in >> child);
  for (int i = 0; i < 100 && !testing::ProcessGone(child); ++i) usleep(10 * 1000);
  CHECK(testing::ProcessGone(child));
}

}  // namespace
}  // namespace zerorun::worker

namespace zerorun::worker {
namespace {

using testing::TempDir;

v1::LaunchRequest OneRank(const std::string& job, const std::string& script) {
  v1::LaunchRequest r;
  r.set_job_id(job);
  v1::RankSpec* spec = r.add_ranks();
  for (const char* a : {"/bin/sh", "-c"}) spec->add_argv(a);
  spec->add_argv(script);
  return r;
}

pid_t ReadPid(const std::string& path) {
  for (int i = 0; i < 200; ++i) {
    std::ifstream in(path);
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    usleep(10 * 1000);
  }
  return 0;
}

bool GoneWithin(pid_t pid, double seconds) {
  for (int i = 0; i < seconds * 100 && !testing::ProcessGone(pid); ++i) usleep(10 * 1000);
  return testing::ProcessGone(pid);
}

TEST_CASE("A double-forked daemon (setsid) of a rank ends with it, with and without cgroups",
          "[job_runner][leftovers]") {
  TempDir dir;
  const std::string cgroup_root = AgentCgroupRoot(dir.path());
  for (const bool cgroups : {false, true}) {
    if (cgroups && cgroup_root.empty()) {
      WARN("no writable cgroup hierarchy here (not root?): the subreaper alone was tested");
      continue;
    }
    INFO("cgroups: " << cgroups);
    JobRunner runner(JobRunnerOptions{.state_dir = dir.path() + (cgroups ? "/cg" : "/plain"),
                                      .cgroup_root = cgroups ? cgroup_root : ""});
    const std::string pid_file = dir.path() + (cgroups ? "/cg.pid" : "/plain.pid");
    // The daemon leaves the rank's process group and session and is re-parented away from it.
    REQUIRE(
        runner
            .Launch(OneRank("job-daemon", "(setsid sh -c 'trap \"\" TERM; echo $$ > " + pid_file +
                                              "; exec sleep 300' &) ; sleep 0.3; exit 0"))
            .ok());
    const pid_t daemon = ReadPid(pid_file);
    REQUIRE(daemon > 0);
    Drain(runner, "job-daemon");
    CHECK(GoneWithin(daemon, 2));
    kill(daemon, SIGKILL);
  }
}

TEST_CASE("A rank's supervisor ends it when the launcher's lease lapses", "[job_runner][lease]") {
  TempDir dir;
  JobRunner runner(dir.path());
  v1::LaunchRequest request = OneRank("job-lease", "exec sleep 300");
  request.set_lease_ms(500);
  request.set_grace_ms(500);
  const absl::Time start = absl::Now();
  REQUIRE(runner.Launch(request).ok());
  const std::vector<v1::RankEvent> events = Drain(runner, "job-lease");  // No Renew: it lapses.
  const double took = absl::ToDoubleSeconds(absl::Now() - start);
  CHECK(took < 3.0);
  CHECK(events.back().signal() == SIGTERM);
  CHECK_THAT(events.back().text(), Catch::Contains("the launcher's lease lapsed"));
  CHECK_THAT(runner.Status("job-lease").ranks(0).end_reason(), Catch::Contains("lease lapsed"));
}

TEST_CASE("Renewing the lease keeps the rank running", "[job_runner][lease]") {
  TempDir dir;
  JobRunner runner(dir.path());
  v1::LaunchRequest request = OneRank("job-renew", "sleep 1.5; exit 4");
  request.set_lease_ms(500);
  REQUIRE(runner.Launch(request).ok());
  std::vector<v1::RankEvent> events;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i) {
    runner.Renew("job-renew");
    REQUIRE(runner
                .WaitEvents("job-renew", static_cast<int64_t>(events.size()),
                            absl::Milliseconds(100), &events, &done)
                .ok());
  }
  REQUIRE(done);
  CHECK(events.back().exit_code() == 4);
}

TEST_CASE("A restarted runner re-adopts live ranks: numbering, output and exit code continue",
          "[job_runner][adopt]") {
  TempDir dir;
  JobRunnerOptions options{.state_dir = dir.path(), .adoptable = true};
  int64_t next = 0;
  pid_t pid = 0;
  {
    JobRunner first(options);
    REQUIRE(first.Launch(OneRank("job-adopt", "echo before; sleep 1; echo after; exit 3")).ok());
    std::vector<v1::RankEvent> events;
    bool done = false;
    while (events.size() < 2) {
      REQUIRE(first
                  .WaitEvents("job-adopt", static_cast<int64_t>(events.size()),
                              absl::Milliseconds(100), &events, &done)
                  .ok());
    }
    CHECK(events[1].text() == "before");
    next = events.back().index() + 1;
    pid = events[0].pid();
  }  // The runner goes away (as zerorund would); the rank runs on under its supervisor.
  CHECK_FALSE(testing::ProcessGone(pid));
  JobRunner second(options);
  CHECK(second.Restore() == 1);
  std::vector<v1::RankEvent> events;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i) {
    REQUIRE(second
                .WaitEvents("job-adopt", next + static_cast<int64_t>(events.size()),
                            absl::Milliseconds(100), &events, &done)
                .ok());
  }
  REQUIRE(done);
  REQUIRE(events.size() == 2);
  CHECK(events[0].index() == next);
  CHECK(events[0].text() == "after");
  CHECK(events[1].kind() == v1::RankEvent::KIND_EXITED);
  CHECK(events[1].exit_code() == 3);
  CHECK(events[1].pid() == pid);
}

// Reads `job`'s events on from those in *events until the job is done (at most 30 s).
void ReadToEnd(JobRunner& runner, const std::string& job, std::vector<v1::RankEvent>* events,
               bool* done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!*done && absl::Now() < deadline) {
    REQUIRE(runner
                .WaitEvents(job, static_cast<int64_t>(events->size()), absl::Milliseconds(200),
                            events, done)
                .ok());
  }
}

// The output lines in `events`, checked to be "1", "2", ... with no gap before them.
int CountedLines(const std::vector<v1::RankEvent>& events) {
  int lines = 0;
  for (const v1::RankEvent& e : events) {
    CHECK(e.kind() != v1::RankEvent::KIND_GAP);
    if (e.kind() == v1::RankEvent::KIND_OUTPUT) CHECK(e.text() == std::to_string(++lines));
  }
  return lines;
}

TEST_CASE("A reader that keeps reading gets every line of a chatty rank", "[job_runner][memory]") {
  TempDir dir;
  JobRunner runner(JobRunnerOptions{.state_dir = dir.path(), .replay_events_per_rank = 100});
  REQUIRE(runner.Launch(OneRank("job-chatty", "seq 1 20000")).ok());
  std::vector<v1::RankEvent> events;
  bool done = false;
  const JobRunner::WatcherGuard watching(&runner, "job-chatty");
  ReadToEnd(runner, "job-chatty", &events, &done);
  REQUIRE(done);
  CHECK(CountedLines(events) == 20000);
  CHECK(runner.MemoryFootprint().second <= 100);
}

TEST_CASE(
    "Back-pressure: a watcher that stalls for seconds, its stream still open, then reads on "
    "gets every line, and one that goes away releases the rank's monitor",
    "[job_runner][memory][backpressure]") {
  TempDir dir;
  JobRunner runner(JobRunnerOptions{.state_dir = dir.path(), .replay_events_per_rank = 64});
  REQUIRE(runner.Launch(OneRank("job-stall", "seq 1 5000")).ok());
  std::vector<v1::RankEvent> events;
  bool done = false;
  {
    const JobRunner::WatcherGuard watching(&runner, "job-stall");
    REQUIRE(runner.WaitEvents("job-stall", 0, absl::Milliseconds(200), &events, &done).ok());
    absl::SleepFor(absl::Seconds(6));  // Longer than any patience: the watcher is attached.
    ReadToEnd(runner, "job-stall", &events, &done);
  }
  REQUIRE(done);
  CHECK(CountedLines(events) == 5000);
  // A watcher that reads a little and goes: the monitor goes on without it (the job ends).
  REQUIRE(runner.Launch(OneRank("job-gone", "seq 1 5000")).ok());
  {
    const JobRunner::WatcherGuard watching(&runner, "job-gone");
    std::vector<v1::RankEvent> first;
    REQUIRE(runner.WaitEvents("job-gone", 0, absl::Milliseconds(200), &first, &done).ok());
  }
  for (int i = 0; i < 200 && runner.Running("job-gone"); ++i) usleep(20 * 1000);
  CHECK_FALSE(runner.Running("job-gone"));
}

TEST_CASE("The replay buffer is bounded and ended jobs are evicted", "[job_runner][memory]") {
  TempDir dir;
  JobRunner runner(JobRunnerOptions{
      .state_dir = dir.path(), .replay_events_per_rank = 100, .retention = absl::Seconds(1)});
  REQUIRE(runner.Launch(OneRank("job-lines", "seq 1 20000")).ok());
  std::vector<v1::RankEvent> events;
  bool done = false;
  // Nobody reads while the rank prints: the buffer keeps only the newest events. A reader that
  // comes late gets a gap notice, then the oldest events kept, in order.
  auto running = [&runner] {
    const v1::AgentStatusReply status = runner.Status("job-lines");
    return status.ranks_size() == 1 && status.ranks(0).running();
  };
  for (int i = 0; i < 500 && running(); ++i) usleep(20 * 1000);
  const absl::Status late =
      runner.WaitEvents("job-lines", 1, absl::Milliseconds(50), &events, &done);
  INFO(late.ToString());
  REQUIRE(late.ok());
  REQUIRE(done);
  REQUIRE(events.size() >= 2);
  CHECK(events[0].kind() == v1::RankEvent::KIND_GAP);
  CHECK_THAT(events[0].text(),
             Catch::Contains("event(s) were dropped") && Catch::Contains("hold every line"));
  for (size_t i = 2; i < events.size(); ++i) CHECK(events[i].index() == events[i - 1].index() + 1);
  CHECK(events.back().kind() == v1::RankEvent::KIND_EXITED);
  CHECK(events.size() <= 101);
  CHECK(runner.MemoryFootprint().second <= 100);
  for (int i = 0; i < 200 && runner.MemoryFootprint().first > 0; ++i) usleep(20 * 1000);
  CHECK(runner.MemoryFootprint().first == 0);  // Ended, retention 1 s: forgotten.
  std::ifstream log(dir.path() + "/job-lines/rank_0/stdout.log");
  std::string line, last;
  while (std::getline(log, line)) last = line;
  CHECK(last == "20000");  // Every line is in the log.
}

}  // namespace
}  // namespace zerorun::worker
