// ValidateLaunchRequest / ValidateSignalRequest.
#include "request_validation.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "base/env.h"

namespace zerorun::worker {
namespace {

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

// KEY=VALUE with KEY a variable name (the value may be empty).
bool ValidEnvEntry(const std::string& kv) {
  const size_t eq = kv.find('=');
  return eq != std::string::npos && IsEnvName(kv.substr(0, eq));
}

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("bad request: ", what));
}

}  // namespace

bool ValidJobId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id[0] == '.') return false;
  for (char c : id) {
    const unsigned char u = static_cast<unsigned char>(c);
    const bool ok = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

absl::Status ValidateLaunchRequest(const v1::LaunchRequest& request) {
  if (!ValidJobId(request.job_id())) {
    return Bad(absl::StrCat("job id '", request.job_id().substr(0, 128),
                            "' must be 1-128 characters of [A-Za-z0-9._-]"));
  }
  if (request.ranks().empty() || request.ranks_size() > kMaxRanksPerRequest) {
    return Bad(absl::StrCat(request.ranks_size(), " ranks; a launch has 1-", kMaxRanksPerRequest));
  }
  if (HasNul(request.cwd()) || HasNul(request.log_dir())) {
    return Bad("cwd or log_dir holds a NUL byte");
  }
  std::set<int> seen;
  for (const v1::RankSpec& spec : request.ranks()) {
    const std::string who = absl::StrCat("rank ", spec.rank());
    if (spec.rank() < 0 || spec.local_rank() < 0) return Bad(absl::StrCat(who, ": negative"));
    if (!seen.insert(spec.rank()).second) return Bad(absl::StrCat(who, ": given twice"));
    if (spec.argv().empty() || spec.argv(0).empty()) return Bad(absl::StrCat(who, " has no argv"));
    for (const std::string& arg : spec.argv()) {
      if (HasNul(arg)) return Bad(absl::StrCat(who, ": an argument holds a NUL byte"));
    }
    for (const std::string& kv : spec.env()) {
      if (HasNul(kv) || !ValidEnvEntry(kv)) {
        return Bad(absl::StrCat(who, ": env entry '", kv.substr(0, kv.find('\0')).substr(0, 64),
                                "' is not KEY=VALUE"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSignalRequest(const v1::SignalRequest& request) {
  if (!ValidJobId(request.job_id())) return Bad("job id");
  if (request.signal() < 1 || request.signal() > 64) {
    return Bad(absl::StrCat("signal ", request.signal(), " is outside 1-64"));
  }
  for (int rank : request.ranks()) {
    if (rank < 0) return Bad(absl::StrCat("rank ", rank, " is negative"));
  }
  return absl::OkStatus();
}

}  // namespace zerorun::worker
