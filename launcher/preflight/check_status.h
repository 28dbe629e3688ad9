// The pre-flight status shorthands (v1::CheckStatus) and the conversion of a config finding.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_CHECK_STATUS_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_CHECK_STATUS_H_

#include <string>

#include "base/exit_codes.h"
#include "dsconfig/finding.h"
#include "zerorun/v1/common.pb.h"

namespace zerorun::launcher {

using CheckStatus = ::zerorun::v1::CheckStatus;
inline constexpr CheckStatus kOk = ::zerorun::v1::CHECK_STATUS_OK;
inline constexpr CheckStatus kWarn = ::zerorun::v1::CHECK_STATUS_WARN;
inline constexpr CheckStatus kCritical = ::zerorun::v1::CHECK_STATUS_CRITICAL;
inline constexpr CheckStatus kUnknown = ::zerorun::v1::CHECK_STATUS_UNKNOWN;

using Finding = dsconfig::Finding;

// dsconfig's severities are the protocol's numbers.
inline CheckStatus StatusOf(const Finding& finding) {
  return static_cast<CheckStatus>(finding.status);
}

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_CHECK_STATUS_H_
