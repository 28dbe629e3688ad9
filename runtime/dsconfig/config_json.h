// Reads DeepSpeed config text the way DeepSpeed's hjson loader accepts it in practice: JSON with
// '#', '//' and '/* */' comments and trailing commas; duplicate keys are an error.
#ifndef ZERORUN_RUNTIME_DSCONFIG_CONFIG_JSON_H_
#define ZERORUN_RUNTIME_DSCONFIG_CONFIG_JSON_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace zerorun::dsconfig {

struct JsonDocument {
  std::string path;
  nlohmann::json root;
  std::map<std::string, int> key_lines;  // Dotted key path ("zero_optimization.stage") -> line.

  // Line of `dotted_key`, or of its closest enclosing key; 0 when unknown.
  int LineOf(const std::string& dotted_key) const;
  // "path:line" for messages ("path" alone when the line is unknown).
  std::string Where(const std::string& dotted_key) const;
};

// Parses `text`. Returns InvalidArgument naming path:line for a syntax error (with a hint about
// hjson's unquoted keys, which zerorun does not accept), for a top level that is not an object,
// and for a duplicate key: "Duplicate keys in DeepSpeed config: [key]" with both line numbers.
absl::StatusOr<JsonDocument> ParseConfigJson(absl::string_view path, absl::string_view text);

// JSON text of `value` that never throws: bytes that are not UTF-8 (argv, environment) are
// written as U+FFFD. Every JSON zerorun prints or writes goes through it.
std::string Dump(const nlohmann::json& value, int indent = -1);

// Reads the file; NotFound when it does not exist or cannot be read.
absl::StatusOr<JsonDocument> LoadConfigJson(const std::string& path);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_CONFIG_JSON_H_
