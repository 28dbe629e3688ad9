// The DeepSpeed config vocabulary zerorun knows: every key of reference sections 12-13 with
// DeepSpeed 0.19.6's default, its type, and which blocks reject unknown keys.
#ifndef ZERORUN_RUNTIME_DSCONFIG_CONFIG_SCHEMA_H_
#define ZERORUN_RUNTIME_DSCONFIG_CONFIG_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace zerorun::dsconfig {

enum class ValueKind {
  kBool,
  kInt,  // Integer; an integral float such as 5e8 is accepted, a fractional one is not.
  kFloat,
  kString,
  kBlock,  // A nested object whose keys are listed in the schema.
  kAny,    // Not checked (free-form objects, lists, optional strings).
};

struct KeySpec {
  const char* path;  // Dotted, e.g. "zero_optimization.offload_param.device".
  ValueKind kind;
  const char* default_json;  // DeepSpeed's default as JSON text; "null" when it has none.
};

// Every known key, parents before children.
const std::vector<KeySpec>& ConfigSchema();

// The spec for `path`, or nullptr when unknown.
const KeySpec* FindKey(absl::string_view path);

// Known child key names of `block` ("" for the top level).
std::vector<std::string> ChildKeys(absl::string_view block);

// True when DeepSpeed rejects unknown keys inside `block` (pydantic extra=forbid):
// zero_optimization, its offload_* blocks, fp16, bf16/bfloat16 and the monitor blocks.
bool IsStrictBlock(absl::string_view block);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_CONFIG_SCHEMA_H_
