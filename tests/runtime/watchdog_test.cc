// The device communicators' watchdog on the CPU: collectives are tasks on real CPU streams, the
// "backend" a flag the abort raises and a stuck task waits on (as NCCL's kernels wait for a peer
// until ncclCommAbort). It completes Work when the stream finishes it, turns a collective past the
// timeout or a backend error into an abort and errors naming the rank, the operation and its
// number on every collective in flight, in a bounded time, and refuses work after the abort.
#include "comm/watchdog.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <memory>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"

namespace zerorun {
namespace {

// A collective as a stream task: finishes at once, or waits for `release` (a peer that never
// arrives, freed by the abort).
CollectiveWatchdog::Probe Issue(Stream& stream, const absl::Notification* release = nullptr) {
  if (release != nullptr) {
    stream.Enqueue([release] {
      release->WaitForNotification();
      return absl::AbortedError("kernel stopped by the abort");
    });
  }
  Event done = stream.Record();
  return [done]() -> absl::StatusOr<bool> {
    if (!done.Query()) return false;
    absl::Status status = done.Wait();
    if (!status.ok()) return status;
    return true;
  };
}

TEST_CASE("The watchdog completes collectives in order as their streams finish them",
          "[watchdog][comm]") {
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  std::atomic<int> aborts{0};
  CollectiveWatchdog dog(0, 2, absl::Seconds(30), {nullptr, [&] { ++aborts; }});
  std::vector<Work> works;
  for (int i = 0; i < 20; ++i) works.push_back(dog.Watch("all_reduce", Issue(*stream)));
  for (const Work& w : works) REQUIRE(w.Wait(absl::Seconds(10)).ok());
  CHECK(dog.issued() == 20);
  CHECK(dog.aborted().ok());
  CHECK(aborts == 0);
}

TEST_CASE(
    "A collective past the timeout aborts the backend and fails every collective in flight, "
    "naming the rank and the operation",
    "[watchdog][comm]") {
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  absl::Notification release;
  std::atomic<int> aborts{0};
  CollectiveWatchdog dog(1, 2, absl::Milliseconds(300),
                         {nullptr, [&] {
                            ++aborts;
                            release.Notify();  // ncclCommAbort: the stuck kernel returns.
                          }});
  const Work ok = dog.Watch("barrier", Issue(*stream));
  REQUIRE(ok.Wait(absl::Seconds(10)).ok());
  const absl::Time start = absl::Now();
  const Work stuck = dog.Watch("all_reduce", Issue(*stream, &release));
  const Work after = dog.Watch("broadcast", Issue(*stream));
  // A wait shorter than the watchdog's timeout: DeadlineExceeded from the Work, nothing aborted.
  CHECK(absl::IsDeadlineExceeded(stuck.Wait(absl::Milliseconds(50))));
  CHECK(aborts == 0);

  const absl::Status status = stuck.Wait(absl::Seconds(10));
  const absl::Duration took = absl::Now() - start;
  INFO(status.ToString());
  CHECK(absl::IsDeadlineExceeded(status));
  CHECK(absl::StrContains(status.message(), "rank 1 of 2: all_reduce #2 did not complete within"));
  CHECK(absl::StrContains(status.message(), "aborted"));
  CHECK(took >= absl::Milliseconds(300));
  CHECK(took < absl::Seconds(3));
  const absl::Status later = after.Wait(absl::Seconds(10));
  CHECK(absl::StrContains(later.message(), "rank 1 of 2: broadcast #3 did not complete"));
  CHECK(aborts == 1);
  CHECK(absl::IsDeadlineExceeded(dog.aborted()));
  // After the abort: refused at once, with the abort's reason.
  const Work refused = dog.Watch("all_gather", Issue(*stream));
  CHECK(refused.Test());
  CHECK(absl::StrContains(refused.status().message(), "all_reduce #2"));
  CHECK(aborts == 1);
}

TEST_CASE("A backend error aborts at once, long before the timeout", "[watchdog][comm]") {
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  absl::Notification release, peer_died;
  std::atomic<int> aborts{0};
  CollectiveWatchdog dog(0, 4, absl::Minutes(5),
                         {[&] {
                            return peer_died.HasBeenNotified()
                                       ? absl::InternalError("remote process exited")
                                       : absl::OkStatus();
                          },
                          [&] {
                            ++aborts;
                            release.Notify();
                          }});
  const Work stuck = dog.Watch("reduce_scatter", Issue(*stream, &release));
  CHECK(absl::IsDeadlineExceeded(stuck.Wait(absl::Milliseconds(100))));
  const absl::Time start = absl::Now();
  peer_died.Notify();
  const absl::Status status = stuck.Wait(absl::Seconds(10));
  INFO(status.ToString());
  CHECK(absl::IsAborted(status));
  CHECK(
      absl::StrContains(status.message(), "rank 0 of 4: reduce_scatter #1: remote process exited"));
  CHECK(absl::Now() - start < absl::Seconds(2));
  CHECK(aborts == 1);
}

TEST_CASE("A collective whose stream fails aborts the communicator", "[watchdog][comm]") {
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  std::atomic<int> aborts{0};
  CollectiveWatchdog dog(0, 2, absl::Minutes(5), {nullptr, [&] { ++aborts; }});
  stream->Enqueue([] { return absl::InternalError("an illegal memory access"); });
  const Work failed = dog.Watch("all_gather", Issue(*stream));
  const absl::Status status = failed.Wait(absl::Seconds(10));
  CHECK(absl::IsAborted(status));
  CHECK(absl::StrContains(status.message(), "rank 0 of 2: all_gather #1 failed: an illegal"));
  CHECK(aborts == 1);
}

TEST_CASE("Destroying the watchdog cancels what is still in flight", "[watchdog][comm]") {
  std::unique_ptr<Stream> stream = CreateCpuStream(/*async=*/true);
  absl::Notification release;
  Work stuck;
  {
    CollectiveWatchdog dog(0, 2, absl::Minutes(5), {});
    stuck = dog.Watch("all_reduce", Issue(*stream, &release));
  }
  CHECK(absl::IsCancelled(stuck.Wait(absl::Seconds(1))));
  release.Notify();
}

}  // namespace
}  // namespace zerorun
