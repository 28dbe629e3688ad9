// What a job's ranks leave in /dev/shm when they end, and its removal once every rank on the node
// has exited. DeepSpeed's CPU collectives (deepspeed/ops/csrc/cpu/comm/shm.cpp, 0.16) create one
// 66 MB POSIX shared-memory segment per rank named
//   deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>
// and never unlink it: every CPU DeepSpeed job leaks world_size x 66 MB of RAM until reboot.
#ifndef ZERORUN_WORKER_SHM_LEFTOVERS_H_
#define ZERORUN_WORKER_SHM_LEFTOVERS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace zerorun::worker {

// The name prefix (without the rank) of the segments a job's ranks may create, from the rank
// environment ("KEY=VALUE" strings) and the uid they run as; "" when the environment has no
// MASTER_ADDR and MASTER_PORT. Pure.
std::string DeepSpeedShmPrefix(const std::vector<std::string>& rank_env, uid_t uid);

// Unlinks every regular file in `shm_dir` named `prefix` + decimal rank and owned by `uid`;
// returns how many. Nothing else is touched (another job's port, another user's file, a link).
// Call only once no rank of the job runs on this node. Any thread.
int RemoveShmLeftovers(const std::string& prefix, uid_t uid,
                       const std::string& shm_dir = "/dev/shm");

}  // namespace zerorun::worker

#endif  // ZERORUN_WORKER_SHM_LEFTOVERS_H_
