// SwapDir on real directories and real processes: a directory a live process holds is refused
// (in this process and from another), one a SIGKILLed process left is reclaimed (its swap files
// removed, a file zerorun did not make kept), and a link planted at the name is not followed.
#include "offload/swap_dir.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace zerorun {
namespace {

// A child that takes the swap directory, makes a swap file in it, says so on a pipe, then
// waits to be killed (its destructors never run, as with an OOM kill).
pid_t HolderProcess(const std::string& nvme, const std::string& tag) {
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(ready[0]);
    absl::StatusOr<std::unique_ptr<SwapDir>> dir = SwapDir::Create(nvme, tag, "nvme_path");
    if (!dir.ok()) _exit(1);
    std::ofstream((*dir)->path() + "/optimizer_state.swap") << "state";
    (void)!write(ready[1], "k", 1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char c = 0;
  REQUIRE(read(ready[0], &c, 1) == 1);
  close(ready[0]);
  return pid;
}

TEST_CASE(
    "A swap directory a live process holds is refused, one a killed process left is reclaimed",
    "[nvme][swapdir]") {
  testing::TempDir tmp;
  const std::string nvme = tmp.path();
  const std::string dir = nvme + "/zerorun-job-rank0";
  {
    absl::StatusOr<std::unique_ptr<SwapDir>> mine = SwapDir::Create(nvme, "job-rank0", "k");
    REQUIRE(mine.ok());
    CHECK((*mine)->reclaimed() == 0);
    absl::StatusOr<std::unique_ptr<SwapDir>> again = SwapDir::Create(nvme, "job-rank0", "k");
    CHECK(again.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK_THAT(std::string(again.status().message()),
               Catch::Contains(dir) && Catch::Contains("held by a live process"));
  }
  CHECK_FALSE(std::filesystem::exists(dir));  // Empty: removed with its holder.

  const pid_t holder = HolderProcess(nvme, "job-rank0");
  absl::StatusOr<std::unique_ptr<SwapDir>> held = SwapDir::Create(nvme, "job-rank0", "k");
  CHECK(held.status().code() == absl::StatusCode::kPermissionDenied);
  std::ofstream(dir + "/notes.txt") << "not zerorun's";
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  REQUIRE(std::filesystem::exists(dir + "/optimizer_state.swap"));
  {
    absl::StatusOr<std::unique_ptr<SwapDir>> reclaimed = SwapDir::Create(nvme, "job-rank0", "k");
    REQUIRE(reclaimed.ok());
    CHECK((*reclaimed)->reclaimed() == 1);
    CHECK_FALSE(std::filesystem::exists(dir + "/optimizer_state.swap"));
    CHECK(std::filesystem::exists(dir + "/notes.txt"));  // Never deleted.
  }
  CHECK(std::filesystem::exists(dir));  // Not empty: kept.

  // A link where the directory would be: refused, and what it points at is left alone.
  std::filesystem::create_directory(nvme + "/elsewhere");
  std::filesystem::create_directory_symlink(nvme + "/elsewhere", nvme + "/zerorun-link-rank0");
  std::ofstream(nvme + "/elsewhere/params.swap") << "someone's";
  CHECK(SwapDir::Create(nvme, "link-rank0", "k").status().code() ==
        absl::StatusCode::kPermissionDenied);
  CHECK(std::filesystem::exists(nvme + "/elsewhere/params.swap"));
}

}  // namespace
}  // namespace zerorun
