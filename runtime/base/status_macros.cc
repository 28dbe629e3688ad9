// Annotate(): adds context to a Status while it travels up the stack.
#include "base/status_macros.h"

#include "absl/strings/str_cat.h"

namespace zerorun {

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace zerorun
