// zerorun status' table: the elapsed time, the slowest rank's progress against the total steps
// the ranks reported, the ETA at the pace so far, and an ended job's end and exit code.
#include <catch2/catch.hpp>

#include "cli/status_cli.h"

namespace zerorun::launcher {
namespace {

v1::JobStatusReply Job(absl::Time started) {
  v1::JobStatusReply s;
  s.set_job_id("j");
  s.set_state("running");
  s.set_world_size(2);
  s.set_started_unix_ms(absl::ToUnixMillis(started));
  for (int rank = 0; rank < 2; ++rank) {
    v1::RankStatus* r = s.add_ranks();
    r->set_rank(rank);
    r->set_state("running");
    r->set_heartbeat_age_s(-1);
  }
  return s;
}

TEST_CASE("Status shows progress and ETA when the ranks reported their total steps", "[status]") {
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  v1::JobStatusReply s = Job(now - absl::Seconds(100));
  s.mutable_ranks(0)->set_step(30);
  s.mutable_ranks(1)->set_step(25);  // The slowest rank sets the pace.
  s.mutable_ranks(1)->set_total_steps(100);
  const std::string text = FormatJobStatus(s, now);
  INFO(text);
  // 25 of 100 steps in 100 s: 75 more take 300 s.
  CHECK_THAT(text, Catch::Contains("elapsed 1m40s  step 25/100 (25%) [#####...............]  "
                                   "ETA 5m00s\n"));
}

TEST_CASE("Status without a total shows only the elapsed time, and an ended job its end",
          "[status]") {
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  v1::JobStatusReply s = Job(now - absl::Seconds(3725));
  s.mutable_ranks(0)->set_step(7);
  std::string text = FormatJobStatus(s, now);
  CHECK_THAT(text, Catch::Contains("\nelapsed 1h02m\n"));
  CHECK_THAT(text, !Catch::Contains("ETA"));
  s.set_state("failed");
  s.set_ended_unix_ms(absl::ToUnixMillis(now - absl::Seconds(300)));
  s.set_exit_code(137);
  text = FormatJobStatus(s, now);
  CHECK_THAT(text, Catch::Contains("ended 5 min ago, exit 137 (ran 3425.0 s)"));
  CHECK_THAT(text, !Catch::Contains("elapsed"));
}

TEST_CASE("Status shows each rank's last step split into phases and who waits most", "[status]") {
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  v1::JobStatusReply s = Job(now - absl::Seconds(10));
  std::string text = FormatJobStatus(s, now);
  CHECK_THAT(text, !Catch::Contains("COMM WAIT"));  // Nobody reported a breakdown.
  v1::StepTimes* t = s.mutable_ranks(0)->mutable_step_times();
  t->set_seconds(0.5);
  t->set_compute_s(0.2);
  t->set_comm_wait_s(0.25);
  t->set_optimizer_s(0.04);
  t->set_io_s(0.01);
  t = s.mutable_ranks(1)->mutable_step_times();
  t->set_seconds(0.5);
  t->set_compute_s(0.4);
  t->set_comm_wait_s(0.05);
  t->set_optimizer_s(0.05);
  text = FormatJobStatus(s, now);
  INFO(text);
  CHECK_THAT(text, Catch::Contains("STEP TIME  COMPUTE  COMM WAIT  OPTIMIZER     IO"));
  CHECK_THAT(text, Catch::Contains("0         0.500s      40%        50%         8%     2%\n"));
  CHECK_THAT(text, Catch::Contains("1         0.500s      80%        10%        10%     0%\n"));
  CHECK_THAT(text, Catch::Contains("most waiting on communication: rank 0, 50% of its step\n"));
}

}  // namespace
}  // namespace zerorun::launcher
