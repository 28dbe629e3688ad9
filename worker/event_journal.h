// EventJournal: a job's rank events appended to <job_dir>/events.journal before anyone sees
// them, so event numbers survive a zerorund restart and a reconnecting launcher resumes exactly.
// Records are a 4-byte little-endian length and a serialized RankEvent; a torn last record (a
// crash mid-write) is dropped on reading.
#ifndef ZERORUN_WORKER_EVENT_JOURNAL_H_
#define ZERORUN_WORKER_EVENT_JOURNAL_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "zerorun/v1/node_agent.pb.h"

namespace zerorun::worker {

class EventJournal {
 public:
  EventJournal() = default;
  ~EventJournal();
  EventJournal(const EventJournal&) = delete;
  EventJournal& operator=(const EventJournal&) = delete;

  // Opens `path` for appending; `truncate` starts it empty. Internal naming the path.
  absl::Status Open(const std::string& path, bool truncate);
  // Queues one event; Flush writes what is queued in one write.
  void Add(const v1::RankEvent& event);
  absl::Status Flush();
  void Close();

  // Calls `on_event` for each whole record of `path` in order. With `repair` (only when nothing
  // writes it: zerorund's recovery), also truncates a torn tail; a reader beside a live writer
  // passes false, since the tail it sees may be a write in progress. NotFound: no journal.
  static absl::Status Read(const std::string& path,
                           const std::function<void(const v1::RankEvent&)>& on_event,
                           bool repair = true);

 private:
  int fd_ = -1;
  std::string path_;
  std::string pending_;
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_EVENT_JOURNAL_H_
