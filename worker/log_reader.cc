// Job records read back from disk and rank logs streamed from them (see log_reader.h).
#include "log_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "proc_util.h"
#include "request_validation.h"

namespace zerorun::worker {
namespace {

constexpr size_t kChunk = 64 * 1024;

struct OpenLog {
  int rank = 0;
  std::string stream;
  std::string path;
  int fd = -1;
};

// Reads what `log` has beyond where it is and emits it; false when emit said stop.
bool Drain(OpenLog* log, const std::function<bool(const v1::LogChunk&)>& emit) {
  if (log->fd < 0) log->fd = open(log->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (log->fd < 0) return true;
  std::string buffer(kChunk, '\0');
  while (true) {
    const ssize_t n = read(log->fd, buffer.data(), buffer.size());
    if (n <= 0) return true;
    v1::LogChunk chunk;
    chunk.set_rank(log->rank);
    chunk.set_stream(log->stream);
    chunk.set_data(buffer.data(), static_cast<size_t>(n));
    if (!emit(chunk)) return false;
  }
}

}  // namespace

absl::StatusOr<v1::AgentJobRecord> ReadJobRecord(const std::string& state_dir,
                                                 const std::string& job_id) {
  if (!ValidJobId(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("'", job_id, "' is not a job id"));
  }
  const std::string path = absl::StrCat(state_dir, "/", job_id, "/job.json");
  const std::optional<std::string> json = ReadSmallFile(path);
  v1::AgentJobRecord record;
  if (!json.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("no job ", job_id, " here (no ", path, "; its files may have been removed)"));
  }
  if (!google::protobuf::util::JsonStringToMessage(*json, &record).ok()) {
    return absl::DataLossError(absl::StrCat(path, " is not a job record"));
  }
  return record;
}

absl::Status StreamLogs(const v1::AgentJobRecord& record, const v1::LogsRequest& request,
                        const LogFollow& follow,
                        const std::function<bool(const v1::LogChunk&)>& emit) {
  const std::set<int> wanted(request.ranks().begin(), request.ranks().end());
  std::vector<OpenLog> logs;
  for (const v1::AgentRankRecord& r : record.ranks()) {
    if (!wanted.empty() && wanted.count(r.rank()) == 0) continue;
    logs.push_back({r.rank(), "stdout", r.stdout_path()});
    logs.push_back({r.rank(), "stderr", r.stderr_path()});
  }
  struct CloseAll {
    std::vector<OpenLog>& logs;
    ~CloseAll() {
      for (OpenLog& log : logs) {
        if (log.fd >= 0) close(log.fd);
      }
    }
  } close_all{logs};
  for (OpenLog& log : logs) {
    if (!Drain(&log, emit)) return absl::OkStatus();
  }
  while (request.follow() && !follow.cancelled()) {
    const bool was_running = follow.running();
    absl::SleepFor(absl::Milliseconds(100));
    for (OpenLog& log : logs) {
      if (!Drain(&log, emit)) return absl::OkStatus();
    }
    if (!was_running) break;  // Read to the end after the last rank exited.
  }
  return absl::OkStatus();
}

}  // namespace zerorun::worker
