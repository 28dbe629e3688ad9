// The /dev/shm segments DeepSpeed's CPU collectives leave: the prefix comes from the rank
// environment, and removal takes exactly that job's segments (real files in a temporary
// directory standing in for /dev/shm; tests/python/test_deepspeed_hf.py checks the real one).
#include "shm_leftovers.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "support/temp_dir.h"

namespace zerorun::worker {
namespace {

TEST_CASE("DeepSpeedShmPrefix names the job's segments, or none without a rendezvous",
          "[shm_leftovers]") {
  CHECK(DeepSpeedShmPrefix({"PATH=/bin", "MASTER_ADDR=10.0.0.1", "MASTER_PORT=29511"}, 1000) ==
        "deepspeed_allreduce_buffer_1000_10.0.0.1_29511_");
  CHECK(DeepSpeedShmPrefix({"MASTER_ADDR=10.0.0.1"}, 0).empty());
  CHECK(DeepSpeedShmPrefix({"MASTER_PORT=29511"}, 0).empty());
  // Nothing that could reach outside the directory or match another job's names.
  CHECK(DeepSpeedShmPrefix({"MASTER_ADDR=a/b", "MASTER_PORT=1"}, 0).empty());
  CHECK(DeepSpeedShmPrefix({"MASTER_ADDR=h", "MASTER_PORT=1*"}, 0).empty());
}

TEST_CASE("RemoveShmLeftovers unlinks this job's segments and nothing else", "[shm_leftovers]") {
  testing::TempDir dir;
  const uid_t me = geteuid();
  const std::string prefix = DeepSpeedShmPrefix({"MASTER_ADDR=127.0.0.1", "MASTER_PORT=29600"}, me);
  const std::string mine0 = dir.Write(prefix + "0", "x");
  const std::string mine1 = dir.Write(prefix + "13", "x");
  const std::string other_port =
      dir.Write(DeepSpeedShmPrefix({"MASTER_ADDR=127.0.0.1", "MASTER_PORT=2960"}, me) + "0", "x");
  const std::string longer_port =
      dir.Write(DeepSpeedShmPrefix({"MASTER_ADDR=127.0.0.1", "MASTER_PORT=296001"}, me) + "0", "x");
  const std::string not_rank = dir.Write(prefix + "0.bak", "x");
  const std::string target = dir.Write("precious", "keep");
  const std::string link = dir.path() + "/" + prefix + "7";
  std::filesystem::create_symlink(target, link);

  CHECK(RemoveShmLeftovers(prefix, me, dir.path()) == 2);
  CHECK_FALSE(std::filesystem::exists(mine0));
  CHECK_FALSE(std::filesystem::exists(mine1));
  for (const std::string& kept : {other_port, longer_port, not_rank, target}) {
    INFO(kept);
    CHECK(std::filesystem::exists(kept));
  }
  CHECK(std::filesystem::is_symlink(link));
  // Another account's segment with the same name is not ours to remove.
  const std::string again = dir.Write(prefix + "1", "x");
  CHECK(RemoveShmLeftovers(prefix, me + 1, dir.path()) == 0);
  CHECK(std::filesystem::exists(again));
  CHECK(RemoveShmLeftovers("", me, dir.path()) == 0);
  CHECK(std::filesystem::exists(again));
  CHECK(RemoveShmLeftovers(prefix, me, dir.path() + "/missing") == 0);
}

}  // namespace
}  // namespace zerorun::worker
