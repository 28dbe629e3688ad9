// The communicator every ZeRO stage uses: in-place collectives on fp32 buffers across the job's
// ranks. Backends: Gloo over TCP (CPU ranks, always built); NCCL (GPU ranks) comes with the CUDA
// path. No function here knows what a shard of a model is.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_COMM_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_COMM_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "zerorun/dtype.h"
#include "zerorun/kv_store.h"

namespace zerorun {

enum class ReduceOp { kSum, kAvg };

// Errors of every collective: Aborted (a peer died or the connection broke; names this rank and
// the operation), DeadlineExceeded (peers did not arrive within the timeout), InvalidArgument
// (a bad size or root). After an error the communicator must not be used again.
// Not thread-safe: one thread issues the collectives, in the same order on every rank.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // data[0, n) becomes the element-wise reduction over all ranks.
  virtual absl::Status AllReduce(float* data, size_t n, ReduceOp op) = 0;
  // data holds world_size() shards of `shard` elements. Afterwards shard rank() (at
  // data + rank() * shard) holds the reduction of every rank's shard rank(); the other shards
  // hold partial sums (unspecified). A segmented ring: (world-1)/world of the data per rank.
  virtual absl::Status ReduceScatter(float* data, size_t shard, ReduceOp op) = 0;
  // data holds world_size() shards; each rank contributes its own (data + rank() * shard) and
  // afterwards every rank holds all of them. A ring, in place.
  virtual absl::Status AllGather(float* data, size_t shard) = 0;
  // 16-bit forms (dtype kBf16 or kFp16; kFp32 is InvalidArgument). ReduceScatter16: data as
  // in ReduceScatter; the reduction of shard rank() lands in out[0, shard) in fp32. Partial sums
  // cross the wire in the 16-bit dtype, each hop adding in fp32 and rounding once (the last hop
  // does not round). `data` is clobbered. AllGather16: AllGather of 16-bit elements.
  virtual absl::Status ReduceScatter16(uint16_t* data, size_t shard, DType dtype, ReduceOp op,
                                       float* out) = 0;
  virtual absl::Status AllGather16(uint16_t* data, size_t shard) = 0;
  // data[0, n) of rank `root` is copied to every rank.
  virtual absl::Status Broadcast(float* data, size_t n, int root) = 0;
  virtual absl::Status Barrier() = 0;
};

struct CommOptions {
  std::string name = "world";          // Store keys are "<name>/...": one name per communicator.
  std::string hostname = "127.0.0.1";  // Address this rank listens on for its peers.
  absl::Duration timeout = absl::Minutes(5);  // Per collective and for the rendezvous.
  size_t segment_bytes = 1 << 20;             // Ring segment: bounds the receive buffer, pipelines.
};

// Connects `world_size` ranks through `store` (every rank calls this with the same options).
// `store` is used only during the call. DeadlineExceeded when a peer never shows up.
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(KvStore& store, int rank,
                                                                     int world_size,
                                                                     const CommOptions& options);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_COMM_H_
