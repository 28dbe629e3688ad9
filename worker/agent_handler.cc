// AgentHandler's streams: the Watch loop and the logs path (agent_handler.h).
#include "agent_handler.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "log_reader.h"

namespace zerorun::worker {

absl::Status AgentHandler::Watch(const std::string& job_id, int64_t from_index,
                                 const Reader<v1::RankEvent>& reader) {
  int64_t next = from_index;
  bool done = false;
  absl::Time last_write = absl::InfinitePast();
  const JobRunner::WatcherGuard watching(runner_, job_id);
  auto cancelled = [&] { return reader.cancelled != nullptr && reader.cancelled(); };
  while (!done && !cancelled()) {
    if (shutting_down_) return absl::UnavailableError("zerorund is restarting");
    runner_->Renew(job_id);
    std::vector<v1::RankEvent> events;
    if (absl::Status s = runner_->WaitEvents(job_id, next, absl::Milliseconds(200), &events, &done);
        !s.ok()) {
      return s;
    }
    for (const v1::RankEvent& event : events) {
      if (!reader.write(event)) return absl::CancelledError("client gone");
      next = event.index() + 1;
      last_write = absl::Now();
    }
    if (!events.empty()) runner_->Renew(job_id);  // Still reading, if slowly.
    if (absl::Now() - last_write >= absl::Seconds(1)) {
      v1::RankEvent beat;
      beat.set_kind(v1::RankEvent::KIND_HEARTBEAT);
      beat.set_index(next);
      beat.set_time_unix_ms(absl::ToUnixMillis(absl::Now()));
      if (!reader.write(beat)) return absl::CancelledError("client gone");
      last_write = absl::Now();
    }
  }
  return absl::OkStatus();
}

absl::Status AgentHandler::Logs(const v1::LogsRequest& request,
                                const std::optional<std::string>& owner,
                                const Reader<v1::LogChunk>& reader) {
  absl::StatusOr<v1::AgentJobRecord> record = ReadJobRecord(runner_->state_dir(), request.job_id());
  if (!record.ok()) {
    return absl::Status(record.status().code(), absl::StrCat("node ", runner_->hostname(), ": ",
                                                             record.status().message()));
  }
  if (owner.has_value() && record->owner() != *owner) {
    return absl::PermissionDeniedError(
        absl::StrCat("job ", request.job_id(), " is not ", *owner, "'s"));
  }
  LogFollow follow;
  follow.running = [&] { return runner_->Running(request.job_id()); };
  follow.cancelled = [&] {
    return (reader.cancelled != nullptr && reader.cancelled()) || shutting_down_.load();
  };
  return StreamLogs(*record, request, follow, reader.write);
}

}  // namespace zerorun::worker
