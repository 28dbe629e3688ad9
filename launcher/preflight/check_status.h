// The pre-flight status shorthands (v1::CheckStatus) and the conversion of a config finding.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_CHECK_STATUS_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_CHECK_STATUS_H_

#include <string>
#include <vector>

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

// Appends a row; `exit_code` counts only for a CRITICAL row (others carry 0).
inline void AddRow(std::vector<v1::Check>* rows, const std::string& node, const std::string& check,
                   CheckStatus status, const std::string& detail, int exit_code = kExitOk) {
  v1::Check* row = &rows->emplace_back();
  row->set_node(node);
  row->set_check(check);
  row->set_status(status);
  row->set_detail(detail);
  row->set_exit_code(status == kCritical ? exit_code : kExitOk);
}

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_CHECK_STATUS_H_
