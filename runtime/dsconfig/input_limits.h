// Limits every user-written text (DeepSpeed config, hostfile) is held to before it is parsed:
// size, UTF-8 validity and bracket nesting, checked in one linear pass so that no input can
// crash a parser, exhaust memory or take super-linear time.
#ifndef ZERORUN_RUNTIME_DSCONFIG_INPUT_LIMITS_H_
#define ZERORUN_RUNTIME_DSCONFIG_INPUT_LIMITS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace zerorun::dsconfig {

// DeepSpeed configs are a few KiB and 4 levels deep; hostfiles a few lines.
inline constexpr size_t kMaxInputBytes = 1 << 20;
inline constexpr int kMaxNesting = 32;

// InvalidArgument (exit 65) naming `path`, and for a bad byte or too deep a nesting its line,
// column and byte offset, the value found and the fix:
//   larger than kMaxInputBytes;
//   a byte sequence that is not UTF-8 (overlong forms, surrogates, > U+10FFFF included);
//   '[' / '{' nested deeper than kMaxNesting outside double-quoted strings.
// `what` names the kind of file ("DeepSpeed config", "hostfile").
absl::Status CheckInputText(absl::string_view path, absl::string_view text, absl::string_view what);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_INPUT_LIMITS_H_
