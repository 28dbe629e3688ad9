// "Did you mean" for misspelled keys and names: the closest candidate by edit distance.
#ifndef ZERORUN_RUNTIME_DSCONFIG_SUGGEST_H_
#define ZERORUN_RUNTIME_DSCONFIG_SUGGEST_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace zerorun::dsconfig {

// Levenshtein distance between a and b (insert, delete, substitute each cost 1).
int EditDistance(absl::string_view a, absl::string_view b);

// Returns " (did you mean 'x'?)" for the closest candidate within distance max(2, |word|/3),
// or "" when none is close enough.
std::string DidYouMean(absl::string_view word, const std::vector<std::string>& candidates);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_SUGGEST_H_
