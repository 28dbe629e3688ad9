// Job records read back from disk and rank logs streamed from them (see log_reader.h).
#include "log_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "event_journal.h"
#include "google/protobuf/util/json_util.h"
#include "proc_util.h"
#include "request_validation.h"
#include "user_files.h"

namespace zerorun::worker {
namespace {

constexpr size_t kChunk = 64 * 1024;

struct OpenLog {
  int rank = 0;
  std::string stream;
  std::string path;
  int64_t start = 0;  // Byte to start at (--since).
  FileOwner owner;    // Whose file it must be (a link or another account's file is not read).
  int fd = -1;
};

// Reads what `log` has beyond where it is and emits it; *stop when emit said stop. A log that
// is not there yet is skipped; one that is a link or another account's file is refused
// (PermissionDenied naming it), never read.
absl::Status Drain(OpenLog* log, const std::function<bool(const v1::LogChunk&)>& emit, bool* stop) {
  if (log->fd < 0) {
    absl::StatusOr<int> fd = OpenOwnedFile(log->path, log->owner);
    if (absl::IsNotFound(fd.status())) return absl::OkStatus();
    if (!fd.ok()) return fd.status();
    log->fd = *fd;
    if (log->start > 0) lseek(log->fd, log->start, SEEK_SET);
  }
  std::string buffer(kChunk, '\0');
  while (true) {
    const ssize_t n = read(log->fd, buffer.data(), buffer.size());
    if (n <= 0) return absl::OkStatus();
    v1::LogChunk chunk;
    chunk.set_rank(log->rank);
    chunk.set_stream(log->stream);
    chunk.set_data(buffer.data(), static_cast<size_t>(n));
    if (!emit(chunk)) {
      *stop = true;
      return absl::OkStatus();
    }
  }
}

// Where each (rank, stream) log's lines from `since_ms` on start: just past the last line the
// events journal timed before it (0 when none was).
absl::StatusOr<std::map<std::pair<int, bool>, int64_t>> StartOffsets(
    const v1::AgentJobRecord& record, int64_t since_ms) {
  std::map<std::pair<int, bool>, int64_t> starts;
  if (record.ranks().empty()) return starts;
  // In the job's own directory (<state_dir>/<job>/, the rank directories' parent), wherever the
  // launch put its logs.
  const std::string& any = record.ranks(0).rank_dir();
  const std::string journal = absl::StrCat(any.substr(0, any.rfind("/rank_")), "/events.journal");
  absl::Status s = EventJournal::Read(
      journal,
      [&](const v1::RankEvent& e) {
        if (e.kind() != v1::RankEvent::KIND_OUTPUT || e.time_unix_ms() >= since_ms) return;
        int64_t& start = starts[{e.rank(), e.is_stderr()}];
        start = std::max(start, e.log_offset());
      },
      /*repair=*/false);
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--since needs the job's events journal, which is gone (", s.message(),
                     "): drop --since to read the logs whole"));
  }
  return starts;
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
  const FileOwner owner = FileOwner::FromRecord(record.run_as_uid());
  std::vector<OpenLog> logs;
  for (const v1::AgentRankRecord& r : record.ranks()) {
    if (!wanted.empty() && wanted.count(r.rank()) == 0) continue;
    logs.push_back({r.rank(), "stdout", r.stdout_path(), 0, owner});
    logs.push_back({r.rank(), "stderr", r.stderr_path(), 0, owner});
  }
  if (request.since_unix_ms() > 0) {
    absl::StatusOr<std::map<std::pair<int, bool>, int64_t>> starts =
        StartOffsets(record, request.since_unix_ms());
    if (!starts.ok()) return starts.status();
    for (OpenLog& log : logs) {
      auto it = starts->find({log.rank, log.stream == "stderr"});
      if (it != starts->end()) log.start = it->second;
    }
  }
  struct CloseAll {
    std::vector<OpenLog>& logs;
    ~CloseAll() {
      for (OpenLog& log : logs) {
        if (log.fd >= 0) close(log.fd);
      }
    }
  } close_all{logs};
  bool stop = false;
  for (OpenLog& log : logs) {
    if (absl::Status s = Drain(&log, emit, &stop); !s.ok() || stop) return s;
  }
  while (request.follow() && !follow.cancelled()) {
    const bool was_running = follow.running();
    absl::SleepFor(absl::Milliseconds(100));
    for (OpenLog& log : logs) {
      if (absl::Status s = Drain(&log, emit, &stop); !s.ok() || stop) return s;
    }
    if (!was_running) break;  // Read to the end after the last rank exited.
  }
  return absl::OkStatus();
}

}  // namespace zerorun::worker
