// What libzerorun does with the DeepSpeed keys it does not implement, stated once: the runtime
// refuses a config from this list, and pre-flight shows the same list as rows before launch.
#ifndef ZERORUN_RUNTIME_DSCONFIG_RUNTIME_SUPPORT_H_
#define ZERORUN_RUNTIME_DSCONFIG_RUNTIME_SUPPORT_H_

#include <vector>

#include "dsconfig/finding.h"
#include "nlohmann/json.hpp"

namespace zerorun::dsconfig {

// Findings (check "runtime") for an effective config (DeepSpeed's defaults filled, so only values
// that differ from a default count):
//   kCritical, exit 78: a value that changes what DeepSpeed computes and that libzerorun does not
//     implement (offload, AMSGrad, sum reduction, ZeRO++, reduce_scatter false, 16-bit masters,
//     a communication dtype other than the working one, other optimizers, ...), with the fix;
//   kWarn: a setting libzerorun ignores (monitors without a writer: wandb, comet);
//   kOk: a value that changes only how DeepSpeed runs (bucket sizes, sub_group_size, ...), as a
//     note saying what libzerorun does instead.
std::vector<Finding> RuntimeSupport(const nlohmann::json& effective);

}  // namespace zerorun::dsconfig

#endif  // ZERORUN_RUNTIME_DSCONFIG_RUNTIME_SUPPORT_H_
