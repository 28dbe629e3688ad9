// How pre-flight tells that a train_bin runs libzerorun: the rank entry point (InitFromEnv)
// carries these bytes, and the node probe looks for them while it hashes the binary.
#ifndef ZERORUN_RUNTIME_BASE_RUNTIME_MARKER_H_
#define ZERORUN_RUNTIME_BASE_RUNTIME_MARKER_H_

namespace zerorun {

// The prefix alone; libzerorun's copy ends in its version ("...:1"), so a scanner that holds
// this constant does not match itself.
inline constexpr char kRuntimeMarkerPrefix[] = "zerorun-libzerorun-rank-entry";

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_RUNTIME_MARKER_H_
