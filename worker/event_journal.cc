// Length-prefixed RankEvent records, appended.
#include "event_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "proc_util.h"

namespace zerorun::worker {

EventJournal::~EventJournal() { Close(); }

absl::Status EventJournal::Open(const std::string& path, bool truncate) {
  Close();
  path_ = path;
  fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
             0600);
  if (fd_ < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

void EventJournal::Add(const v1::RankEvent& event) {
  const std::string bytes = event.SerializeAsString();
  const uint32_t size = static_cast<uint32_t>(bytes.size());
  for (int i = 0; i < 4; ++i) pending_.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  pending_ += bytes;
}

absl::Status EventJournal::Flush() {
  if (pending_.empty() || fd_ < 0) return absl::OkStatus();
  const ssize_t n = write(fd_, pending_.data(), pending_.size());
  const bool ok = n == static_cast<ssize_t>(pending_.size());
  pending_.clear();
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("cannot append to ", path_, ": ", n < 0 ? strerror(errno) : "short write"));
  }
  return absl::OkStatus();
}

void EventJournal::Close() {
  (void)Flush();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::Status EventJournal::Read(const std::string& path,
                                const std::function<void(const v1::RankEvent&)>& on_event,
                                bool repair) {
  const std::optional<std::string> data = ReadSmallFile(path);
  if (!data.has_value()) return absl::NotFoundError(absl::StrCat("no journal ", path));
  size_t at = 0;
  while (at + 4 <= data->size()) {
    uint32_t size = 0;
    for (int i = 0; i < 4; ++i) {
      size |= static_cast<uint32_t>(static_cast<unsigned char>((*data)[at + i])) << (8 * i);
    }
    v1::RankEvent event;
    if (at + 4 + size > data->size() || !event.ParseFromArray(data->data() + at + 4, size)) break;
    on_event(event);
    at += 4 + size;
  }
  if (repair && at != data->size()) (void)truncate(path.c_str(), static_cast<off_t>(at));
  return absl::OkStatus();
}

}  // namespace zerorun::worker
