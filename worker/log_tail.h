// LogTail: reads what was appended to a rank's log file since the last call, as whole lines with
// the byte offset after each, so a restarted zerorund resumes exactly where the last one stopped.
#ifndef ZERORUN_WORKER_LOG_TAIL_H_
#define ZERORUN_WORKER_LOG_TAIL_H_

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace zerorun::worker {

class LogTail {
 public:
  // Reads `fd` (owned; -1: a log that could not be opened reads as empty) from byte `offset`.
  LogTail(int fd, int64_t offset) : fd_(fd), offset_(offset) {
    if (fd_ >= 0 && offset > 0) lseek(fd_, offset, SEEK_SET);
  }
  ~LogTail() {
    if (fd_ >= 0) close(fd_);
  }
  LogTail(const LogTail&) = delete;
  LogTail& operator=(const LogTail&) = delete;

  // Complete lines read now, at most `max_lines` and about kMaxBatchBytes (so a rank printing
  // millions of lines never makes zerorund hold them all at once), with the offset just past
  // each; with `flush`, also a final partial line once the file is read to its end. more() says
  // the batch was cut short.
  static constexpr size_t kMaxBatchBytes = 256 * 1024;
  std::vector<std::pair<std::string, int64_t>> Lines(bool flush, size_t max_lines) {
    std::vector<std::pair<std::string, int64_t>> lines;
    char buffer[65536];
    ssize_t n = 0;
    more_ = false;
    while (fd_ >= 0 && partial_.size() < kMaxBatchBytes &&
           (n = read(fd_, buffer, sizeof(buffer))) > 0) {
      partial_.append(buffer, static_cast<size_t>(n));
    }
    more_ = partial_.size() >= kMaxBatchBytes;
    size_t start = 0, newline = 0;
    while ((newline = partial_.find('\n', start)) != std::string::npos) {
      if (lines.size() >= max_lines) {
        more_ = true;
        break;
      }
      offset_ += static_cast<int64_t>(newline - start + 1);
      lines.emplace_back(partial_.substr(start, newline - start), offset_);
      start = newline + 1;
    }
    partial_.erase(0, start);
    // A line longer than a batch (no newline in kMaxBatchBytes) is passed on in pieces: waiting
    // for its end would hold the whole of it, and never end for a rank that writes no newline.
    if (lines.empty() && partial_.size() >= kMaxBatchBytes) {
      offset_ += static_cast<int64_t>(partial_.size());
      lines.emplace_back(std::move(partial_), offset_);
      partial_.clear();
    }
    if (flush && !more_ && !partial_.empty()) {
      offset_ += static_cast<int64_t>(partial_.size());
      lines.emplace_back(std::move(partial_), offset_);
      partial_.clear();
    }
    return lines;
  }
  bool more() const { return more_; }

 private:
  bool more_ = false;
  int fd_;
  int64_t offset_;
  std::string partial_;
};

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_LOG_TAIL_H_
