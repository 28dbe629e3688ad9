// Pre-flight's rows that need every node's probe reply: the same train_bin, script, zerorun
// version and GPU model everywhere; and the runtime's rows: what a train_bin linking libzerorun,
// or a script on zerorun's engine (--engine zerorun), would refuse at start (the runtime's own
// table, dsconfig::RuntimeSupport), so no launch starts that every rank would refuse. Rows are
// appended in this order; nothing else is read or written.
#ifndef ZERORUN_LAUNCHER_PREFLIGHT_NODE_ROWS_H_
#define ZERORUN_LAUNCHER_PREFLIGHT_NODE_ROWS_H_

#include <vector>

#include "preflight/check_status.h"
#include "preflight/preflight.h"

namespace zerorun::launcher {

// Needs at least one probe reply (none: no rows).
void AddCrossNodeRows(const PreflightOptions& opt, const std::vector<v1::ProbeReply>& probes,
                      std::vector<v1::Check>* rows);
// From report.effective_config (null: no rows), report.autos and report.probes.
void AddRuntimeRows(const PreflightOptions& opt, const PreflightReport& report,
                    std::vector<v1::Check>* rows);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_PREFLIGHT_NODE_ROWS_H_
