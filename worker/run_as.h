// Running ranks as the submitting user: a root zerorund serving mTLS maps the client
// certificate's name to a local account and drops to it (setgroups/setgid/setuid, verified)
// between fork and exec, after checking as that user that it may write the job's log directory
// and enter its working directory.
#ifndef ZERORUN_WORKER_RUN_AS_H_
#define ZERORUN_WORKER_RUN_AS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerorun::worker {

struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // Supplementary groups (getgrouplist), the primary one included.
  std::string home;
  std::string shell;
};

// The account name of `uid`, or "#<uid>" when it has none.
std::string UserNameOf(uid_t uid);

// The local account `name`. NotFound naming it (and `node`) when there is none.
absl::StatusOr<RunAs> LookUpUser(const std::string& name, const std::string& node);

// Creates each of `dirs` (and missing parents, 0700) as `user` in a child process that has
// dropped to it, and checks it may enter `cwd` (when not empty). PermissionDenied naming the path,
// the user and the reason when it may not: nothing is created as root.
absl::Status PrepareAs(const RunAs& user, const std::vector<std::string>& dirs,
                       const std::string& cwd);

// Between fork and exec (async-signal-safe): drops to `user` and verifies it (the real and
// effective uid and gid are the user's and uid 0 cannot be regained). False on any failure:
// the caller must not exec.
bool DropTo(const RunAs& user);

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_RUN_AS_H_
