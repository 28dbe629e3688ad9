// CheckInputText: one pass over the bytes, tracking line and column for the message.
#include "dsconfig/input_limits.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace zerorun::dsconfig {
namespace {

// Length of the well-formed UTF-8 sequence at text[i] (RFC 3629), or 0 when it is not one.
size_t Utf8Length(absl::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // Allowed range of the second byte.
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // No overlong forms.
    if (b0 == 0xED) hi = 0x9F;  // No surrogates.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // Nothing above U+10FFFF.
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

absl::Status CheckInputText(absl::string_view path, absl::string_view text,
                            absl::string_view what) {
  if (text.size() > kMaxInputBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", text.size(), " bytes; a ", what,
                                                   " may have at most ", kMaxInputBytes,
                                                   " bytes. Fix: point at the right file"));
  }
  int line = 1, depth = 0;
  size_t line_start = 0;
  bool in_string = false;
  const auto where = [&](size_t i) {
    return absl::StrCat(path, ":", line, ":", i - line_start + 1, " (byte offset ", i, ")");
  };
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    const size_t n = Utf8Length(text, i);
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: byte 0x%02X is not valid UTF-8. Fix: save the %s as UTF-8", where(i),
                          static_cast<uint8_t>(c), what));
    }
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      in_string = false;  // JSON strings do not span lines; keep going to report real errors.
    } else if (in_string) {
      if (c == '\\') i += i + 1 < text.size() && text[i + 1] != '\n' ? 1 : 0;
      if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(i), ": nesting deeper than ", kMaxNesting, " levels in a ", what,
                         ". Fix: DeepSpeed configs are a few levels deep; check the file"));
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
    i += n;
  }
  return absl::OkStatus();
}

}  // namespace zerorun::dsconfig
