// Opening files in users' directories without following their links (see user_files.h).
#include "user_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/fs.h"

namespace zerorun::worker {
namespace {

struct Split {
  std::string dir, name;
};

Split SplitPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// An fd that closes itself.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  int release() {
    const int out = fd;
    fd = -1;
    return out;
  }
};

}  // namespace

FileOwner FileOwner::Self() { return {geteuid(), getegid()}; }

FileOwner FileOwner::FromRecord(uint32_t run_as_uid) {
  return run_as_uid != 0 ? FileOwner{static_cast<uid_t>(run_as_uid), 0} : Self();
}

uint32_t FileOwner::ToRecord() const { return uid == geteuid() ? 0 : static_cast<uint32_t>(uid); }

absl::StatusOr<int> CreateOwnedFile(const std::string& path, const FileOwner& owner) {
  const Split split = SplitPath(path);
  if (split.name.empty() || split.name == "." || split.name == "..") {
    return absl::InvalidArgumentError(absl::StrCat(path, " does not name a file"));
  }
  Fd dir{open(split.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0) return ErrnoError("cannot open directory", split.dir);
  struct stat st {};
  if (fstat(dir.fd, &st) != 0) return ErrnoError("cannot stat", split.dir);
  if (st.st_uid != owner.uid) {
    return absl::PermissionDeniedError(absl::StrCat(
        split.dir, " belongs to uid ", st.st_uid, ", not to uid ", owner.uid,
        " whose ranks write their logs there: refused. Fix: a log directory of that user's own"));
  }
  // Whatever is at the name goes: a link, an old log, a hard link to someone else's file.
  if (unlinkat(dir.fd, split.name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError("cannot replace", path);
  }
  Fd file{openat(dir.fd, split.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0600)};
  if (file.fd < 0) return ErrnoError("cannot create", path);
  if (owner.uid != geteuid() && fchown(file.fd, owner.uid, owner.gid) != 0) {
    return ErrnoError("cannot hand over", path);
  }
  return file.release();
}

absl::StatusOr<int> OpenOwnedFile(const std::string& path, const FileOwner& owner) {
  const Split split = SplitPath(path);
  Fd dir{open(split.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    return ErrnoError("cannot open directory", split.dir);
  }
  // O_NONBLOCK: a FIFO planted there must not hang the reader; regular files ignore it.
  Fd file{openat(dir.fd, split.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
  if (file.fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    if (errno == ELOOP) {
      return absl::PermissionDeniedError(absl::StrCat(path, " is a symbolic link: not read"));
    }
    return ErrnoError("cannot open", path);
  }
  struct stat st {};
  if (fstat(file.fd, &st) != 0) return ErrnoError("cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::PermissionDeniedError(absl::StrCat(path, " is not a regular file: not read"));
  }
  if (st.st_uid != owner.uid) {
    return absl::PermissionDeniedError(absl::StrCat(
        path, " belongs to uid ", st.st_uid, ", not to the job's uid ", owner.uid, ": not read"));
  }
  (void)fcntl(file.fd, F_SETFL, 0);
  return file.release();
}

std::optional<std::string> ReadOwnedFile(const std::string& path, const FileOwner& owner,
                                         size_t max_bytes) {
  absl::StatusOr<int> fd = OpenOwnedFile(path, owner);
  if (!fd.ok()) return std::nullopt;
  Fd closer{*fd};
  std::string text(max_bytes, '\0');
  size_t got = 0;
  while (got < max_bytes) {
    const ssize_t n = read(*fd, text.data() + got, max_bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

}  // namespace zerorun::worker
