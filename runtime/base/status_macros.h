// Early-return helpers for absl::Status and the one context helper every component uses.
// Abseil 20220623 has no status macros; these follow ABSL_RETURN_IF_ERROR / ASSIGN_OR_RETURN.
#ifndef ZERORUN_RUNTIME_BASE_STATUS_MACROS_H_
#define ZERORUN_RUNTIME_BASE_STATUS_MACROS_H_

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define ZR_RETURN_IF_ERROR(expr)                                 \
  do {                                                           \
    ::absl::Status zr_status_ = (expr);                          \
    if (ABSL_PREDICT_FALSE(!zr_status_.ok())) return zr_status_; \
  } while (false)

#define ZR_ASSIGN_OR_RETURN(lhs, rexpr) \
  ZR_ASSIGN_OR_RETURN_IMPL_(ZR_CONCAT_(zr_statusor_, __LINE__), lhs, rexpr)
#define ZR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr)                   \
  auto tmp = (rexpr);                                                \
  if (ABSL_PREDICT_FALSE(!tmp.ok())) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
#define ZR_CONCAT_(a, b) ZR_CONCAT_INNER_(a, b)
#define ZR_CONCAT_INNER_(a, b) a##b

namespace zerorun {

// Returns `status` with `context` prepended to its message ("context: message"), keeping the
// code. An OK status stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_STATUS_MACROS_H_
