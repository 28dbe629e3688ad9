// A job-wide pre-flight finding (one table row before it has a node) and the status shorthands.
#ifndef ZERORUN_LAUNCHER_FINDING_H_
#define ZERORUN_LAUNCHER_FINDING_H_

#include <string>

#include "base/exit_codes.h"
#include "zerorun/v1/common.pb.h"

namespace zerorun::launcher {

using CheckStatus = ::zerorun::v1::CheckStatus;
inline constexpr CheckStatus kOk = ::zerorun::v1::CHECK_STATUS_OK;
inline constexpr CheckStatus kWarn = ::zerorun::v1::CHECK_STATUS_WARN;
inline constexpr CheckStatus kCritical = ::zerorun::v1::CHECK_STATUS_CRITICAL;
inline constexpr CheckStatus kUnknown = ::zerorun::v1::CHECK_STATUS_UNKNOWN;

// exit_code matters only when status is CRITICAL.
struct Finding {
  std::string check;
  CheckStatus status = kOk;
  std::string detail;
  int exit_code = kExitOk;
};

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_FINDING_H_
