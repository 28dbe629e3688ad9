// A job-wide config finding (one pre-flight row before it has a node), free of the protocol so
// that the runtime can read configs without linking gRPC. Severities are Nagios's 0-3, the same
// numbers as v1::CheckStatus.
#ifndef ZERORUN_RUNTIME_DSCONFIG_FINDING_H_
#define ZERORUN_RUNTIME_DSCONFIG_FINDING_H_

#include <string>

#include "base/exit_codes.h"

namespace zerorun::dsconfig {

enum Severity : int { kOk = 0, kWarn = 1, kCritical = 2, kUnknown = 3 };

// exit_code matters only when status is kCritical.
struct Finding {
  std::string check;
  Severity status = kOk;
  std::string detail;
  int exit_code = kExitOk;
};

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_FINDING_H_
