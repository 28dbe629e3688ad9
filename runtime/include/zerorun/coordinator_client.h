// A rank's link to its job's coordinator (the launcher): heartbeats and step reports for
// `zerorun status`, and the key-value store ranks use to bootstrap Gloo/NCCL.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_COORDINATOR_CLIENT_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_COORDINATOR_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "zerorun/step_times.h"

namespace zerorun {

class CoordinatorClient {
 public:
  // From the environment zerorun gives each rank: ZERORUN_COORDINATOR, ZERORUN_JOB_SECRET,
  // ZERORUN_COORDINATOR_CA, RANK. FailedPrecondition naming the missing variable when not
  // launched by zerorun.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> FromEnv();

  // TLS trusting `ca_pem` (the job's coordinator CA); plaintext when it is empty.
  CoordinatorClient(std::string address, std::string secret, int rank, std::string ca_pem = "");
  // Stops the heartbeat thread.
  ~CoordinatorClient();
  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  int rank() const { return rank_; }

  // Key-value store. Get waits up to `timeout`; DeadlineExceeded when the key never appears,
  // Unavailable when the coordinator is gone.
  absl::Status Set(const std::string& key, const std::string& value);
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration timeout);

  // Sends a heartbeat now (with the last step's metrics). Unavailable when the coordinator is
  // gone; the heartbeat thread ignores that and retries on its next tick.
  absl::Status Heartbeat();
  // Records a finished step and reports it at once; `times` (ZeroEngine::step_times()), when
  // given, is shown by `zerorun status` as the step's breakdown.
  absl::Status ReportStep(int64_t step, double loss, double tokens_per_second, int64_t memory_bytes,
                          const StepTimes* times = nullptr);
  void SetPhase(const std::string& phase);
  // The steps the run will take (shown as progress and ETA by `zerorun status`).
  void SetTotalSteps(int64_t total_steps);

  // Starts a thread that sends a heartbeat every `interval` until destruction.
  void StartHeartbeat(absl::Duration interval);
  // True once the coordinator answered that the job is stopping.
  bool stop_requested() const { return stop_requested_; }

 private:
  absl::Status Send(bool with_step);

  struct Impl;  // The channel, and what the next heartbeat reports (under its mutex).
  std::unique_ptr<Impl> impl_;
  const int rank_;
  std::atomic<bool> stop_requested_{false};
  std::thread heartbeat_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_COORDINATOR_CLIENT_H_
