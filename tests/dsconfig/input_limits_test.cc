// Inputs that once crashed or stalled zerorun (fuzzing and hand-made): each gets a clear error
// naming the file, line, column and byte offset, in linear time.
#include "dsconfig/input_limits.h"

#include <catch2/catch.hpp>
#include <string>

#include "dsconfig/batch.h"
#include "dsconfig/config_json.h"

namespace zerorun::dsconfig {
namespace {

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST_CASE("Invalid UTF-8 is named with line, column and byte offset", "[limits]") {
  const std::string text = "{\n  \"stage\": \"\xff\"\n}";
  absl::Status s = CheckInputText("ds.json", text, "DeepSpeed config");
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(Message(s), Catch::Contains("ds.json:2:13 (byte offset 14)") &&
                             Catch::Contains("byte 0xFF is not valid UTF-8") &&
                             Catch::Contains("Fix: save the DeepSpeed config as UTF-8"));
  // Overlong forms, surrogates, code points past U+10FFFF and cut sequences are not UTF-8.
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"}) {
    INFO(bad);
    CHECK_FALSE(CheckInputText("f", bad, "hostfile").ok());
  }
  CHECK(CheckInputText("f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "hostfile").ok());
  // The config reader says the same before it parses.
  CHECK_THAT(Message(ParseConfigJson("ds.json", text).status()), Catch::Contains("ds.json:2:13"));
}

TEST_CASE("Nesting and size are bounded before any parser runs", "[limits]") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  absl::Status s = CheckInputText("deep.json", deep, "DeepSpeed config");
  CHECK_THAT(Message(s),
             Catch::Contains("deep.json:1:33") && Catch::Contains("nesting deeper than 32 levels"));
  // Brackets inside strings do not count.
  CHECK(CheckInputText("s.json", "{\"a\": \"" + std::string(100, '[') + "\"}", "c").ok());
  const std::string big(kMaxInputBytes + 1, ' ');
  CHECK_THAT(Message(CheckInputText("big.json", big, "DeepSpeed config")),
             Catch::Contains("1048577 bytes") && Catch::Contains("at most 1048576"));
}

TEST_CASE("Zero divisors get DeepSpeed's assertion, where DeepSpeed divides by zero", "[limits]") {
  CHECK_THAT(Message(ResolveBatch(16, 0, std::nullopt, 2).status()),
             Catch::StartsWith("Micro batch size per gpu: 0 has to be greater than 0"));
  CHECK_THAT(Message(ResolveBatch(16, std::nullopt, 0, 2).status()),
             Catch::StartsWith("Gradient accumulation steps: 0 has to be greater than 0"));
  CHECK_THAT(Message(ResolveBatch(int64_t{1} << 62, 1, 1, 2).status()),
             Catch::Contains("larger than zerorun accepts"));
  CHECK_THAT(Message(ResolveBatch(std::nullopt, int64_t{1} << 40, 1 << 30, 1 << 20).status()),
             Catch::Contains("larger than zerorun accepts"));
}

}  // namespace
}  // namespace zerorun::dsconfig
