// zerorun logs --since's value (issue 14): durations before now, UTC times in the forms zerorun
// prints and RFC 3339 with offsets; anything else, or a future time, refused with the forms.
#include "cli/logs_cli.h"

#include <catch2/catch.hpp>

#include "absl/time/time.h"

namespace zerorun::launcher {
namespace {

const absl::Time kNow = absl::FromUnixMillis(1796200000123);  // 2026-12-02T08:26:40.123Z

int64_t Since(const std::string& text) {
  absl::StatusOr<int64_t> ms = ParseSince(text, kNow);
  INFO(text << ": " << ms.status());
  REQUIRE(ms.ok());
  return *ms;
}

TEST_CASE("logs --since takes a duration before now", "[logs]") {
  CHECK(Since("90s") == 1796200000123 - 90000);
  CHECK(Since("10m") == 1796200000123 - 600000);
  CHECK(Since("1h30m") == 1796200000123 - 5400000);
  CHECK(Since("0s") == 1796200000123);
}

TEST_CASE("logs --since takes a UTC time as zerorun prints it and RFC 3339 with an offset",
          "[logs]") {
  CHECK(Since("2026-12-02T08:00:00Z") == 1796198400000);
  CHECK(Since("2026-12-02 08:00:00") == 1796198400000);
  CHECK(Since("2026-12-02T09:00:00+01:00") == 1796198400000);
  CHECK(Since("2026-12-02T08:00:00.250Z") == 1796198400250);
  CHECK(Since("1970-01-01T00:00:00Z") == 1);  // 0 would mean "from the start" on the wire.
}

TEST_CASE("logs --since refuses other text and future times, naming the value and the forms",
          "[logs]") {
  for (const std::string bad : {"yesterday", "", "-5m", "10", "2026-13-01T00:00:00Z"}) {
    absl::StatusOr<int64_t> ms = ParseSince(bad, kNow);
    INFO(bad);
    REQUIRE_FALSE(ms.ok());
    CHECK(ms.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(ms.status().message()), Catch::Contains("'" + bad + "'") &&
                                                       Catch::Contains("1h30m") &&
                                                       Catch::Contains("2026-12-02T10:00:00Z"));
  }
  absl::StatusOr<int64_t> future = ParseSince("2026-12-02T09:00:00Z", kNow);
  REQUIRE_FALSE(future.ok());
  CHECK_THAT(std::string(future.status().message()), Catch::Contains("in the future"));
}

}  // namespace
}  // namespace zerorun::launcher
