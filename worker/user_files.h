// Files in directories a user controls (rank logs, a rank's exit record), opened by a zerorund
// that may be root: never through a link the user planted, never a file another account owns.
// Each path is opened relative to its directory's fd: the final component with O_NOFOLLOW, the
// directory and the file checked to belong to the user the job's ranks run as. A hostile user can
// make these calls fail (their own job's logs go missing); never read or write someone else's
// file.
//
// Any thread may call these; they keep no state.
#ifndef ZERORUN_WORKER_USER_FILES_H_
#define ZERORUN_WORKER_USER_FILES_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace zerorun::worker {

// Who the files of a job belong to: the account its ranks run as (a root zerorund's run-as
// user), or zerorund's own effective user.
struct FileOwner {
  uid_t uid = 0;
  gid_t gid = 0;
  static FileOwner Self();
  // As a job record keeps it (AgentJobRecord.run_as_uid; 0: zerorund's own user), and back.
  static FileOwner FromRecord(uint32_t run_as_uid);
  uint32_t ToRecord() const;
};

// Creates `path` afresh for writing (a rank's stdout/stderr log), owned by `owner`: whatever is at
// the name (a link, an old log, a hard link to another file) is unlinked first and the file made
// with O_CREAT|O_EXCL|O_NOFOLLOW, in a directory that must belong to `owner` (else
// PermissionDenied naming it). The caller owns the returned fd (O_CLOEXEC). Internal with errno's
// text on other failures.
absl::StatusOr<int> CreateOwnedFile(const std::string& path, const FileOwner& owner);

// Opens `path` read-only: NotFound when there is nothing there; PermissionDenied naming the path
// when it is a link, not a regular file, or owned by anyone but `owner`. O_CLOEXEC; the caller
// closes it.
absl::StatusOr<int> OpenOwnedFile(const std::string& path, const FileOwner& owner);

// The first `max_bytes` of the file OpenOwnedFile opens, or nullopt when it cannot be opened.
std::optional<std::string> ReadOwnedFile(const std::string& path, const FileOwner& owner,
                                         size_t max_bytes = 4096);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_USER_FILES_H_
