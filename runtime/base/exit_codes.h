// zerorun's process exit codes (ARCHITECTURE.md; sysexits.h values where one fits), shared by
// the launcher, the node agent (which tags its check rows with them) and tests.
#ifndef ZERORUN_RUNTIME_BASE_EXIT_CODES_H_
#define ZERORUN_RUNTIME_BASE_EXIT_CODES_H_

namespace zerorun {

inline constexpr int kExitOk = 0;
inline constexpr int kExitBinaryFailed = 1;  // The training binary failed.
inline constexpr int kExitUsage = 2;         // Bad command line.
inline constexpr int kExitDataErr = 65;      // Malformed hostfile or config data.
inline constexpr int kExitNoInput = 66;      // A named file does not exist.
inline constexpr int kExitUnavailable = 69;  // Pre-flight CRITICAL or node unreachable.
inline constexpr int kExitSoftware = 70;     // Internal error.
inline constexpr int kExitNoPerm = 77;       // Authentication failure.
inline constexpr int kExitCantCreate = 73;   // A directory or file cannot be created.
inline constexpr int kExitConfig = 78;       // Inconsistent configuration (batch, "auto").
inline constexpr int kExitNodeLost = 200;  // A node stopped answering (frozen, partitioned, down).
inline constexpr int kExitHang = 201;  // A rank stopped heartbeating or stepping (--hang-timeout).
// A rank ended because a peer rank died mid-collective (libzerorun's Aborted): a consequence. The
// launcher names another rank's failure as the root cause when one comes.
inline constexpr int kExitPeerFailed = 202;

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_BASE_EXIT_CODES_H_
