// Users' files opened by a (possibly root) zerorund: a link, a FIFO, a directory or a file of
// another account at the name is never followed, read or written; what a link points at is left
// as it was. Real files, links and FIFOs; the ownership cases need root (a file the test hands
// to another uid).
#include "user_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace zerorun::worker {
namespace {

using testing::ReadText;

TEST_CASE("CreateOwnedFile replaces whatever is at the name and never writes through a link",
          "[user_files]") {
  testing::TempDir dir;
  const std::string victim = dir.Write("victim", "precious\n");
  const std::string log = dir.path() + "/stdout.log";
  std::filesystem::create_symlink(victim, log);
  absl::StatusOr<int> fd = CreateOwnedFile(log, FileOwner::Self());
  REQUIRE(fd.ok());
  REQUIRE(write(*fd, "rank output\n", 12) == 12);
  close(*fd);
  CHECK(ReadText(victim) == "precious\n");
  CHECK_FALSE(std::filesystem::is_symlink(log));
  CHECK(ReadText(log) == "rank output\n");
  // An old log is replaced, not appended to; a hard link's other name keeps its content.
  std::filesystem::remove(log);
  std::filesystem::create_hard_link(victim, log);
  fd = CreateOwnedFile(log, FileOwner::Self());
  REQUIRE(fd.ok());
  close(*fd);
  CHECK(ReadText(victim) == "precious\n");
  CHECK(std::filesystem::file_size(log) == 0);
  // A directory that is not the owner's: refused, naming it.
  if (geteuid() == 0) {
    const absl::StatusOr<int> refused = CreateOwnedFile(log, FileOwner{12345, 12345});
    CHECK(refused.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK_THAT(std::string(refused.status().message()), Catch::Contains(dir.path()));
  }
}

TEST_CASE("OpenOwnedFile reads only a regular file of the owner: no link, FIFO or directory",
          "[user_files]") {
  testing::TempDir dir;
  const std::string secret = dir.Write("secret", "TOPSECRET\n");
  const std::string log = dir.path() + "/stdout.log";
  CHECK(OpenOwnedFile(log, FileOwner::Self()).status().code() == absl::StatusCode::kNotFound);
  std::filesystem::create_symlink(secret, log);
  absl::StatusOr<int> fd = OpenOwnedFile(log, FileOwner::Self());
  CHECK(fd.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK_THAT(std::string(fd.status().message()), Catch::Contains("symbolic link"));
  CHECK_FALSE(ReadOwnedFile(log, FileOwner::Self()).has_value());
  std::filesystem::remove(log);
  REQUIRE(mkfifo(log.c_str(), 0600) == 0);  // Opening it must not wait for a writer.
  CHECK(OpenOwnedFile(log, FileOwner::Self()).status().code() ==
        absl::StatusCode::kPermissionDenied);
  std::filesystem::remove(log);
  std::filesystem::create_directory(log);
  CHECK(OpenOwnedFile(log, FileOwner::Self()).status().code() ==
        absl::StatusCode::kPermissionDenied);
  std::filesystem::remove(log);
  std::ofstream(log) << "mine\n";
  CHECK(ReadOwnedFile(log, FileOwner::Self()) == std::optional<std::string>("mine\n"));
  CHECK(ReadOwnedFile(log, FileOwner::Self(), 2) == std::optional<std::string>("mi"));
  if (geteuid() == 0) {  // Another account's file (a hard link to root's, say): not read.
    const absl::StatusOr<int> other = OpenOwnedFile(log, FileOwner{12345, 12345});
    CHECK(other.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK_THAT(std::string(other.status().message()), Catch::Contains("belongs to uid 0"));
  }
  CHECK(FileOwner::FromRecord(FileOwner::Self().ToRecord()).uid == geteuid());
}

}  // namespace
}  // namespace zerorun::worker
