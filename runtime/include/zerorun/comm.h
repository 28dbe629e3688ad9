// Collectives v2, the communicator every ZeRO stage uses: collectives on buffer views across the
// job's ranks, run on a stream and answered by a Work handle (c10d's model). Backends: Gloo over
// TCP (CPU ranks, always built); NCCL (GPU ranks, builds with CUDA). The build's backends
// are chosen in one place, CreateCommunicator (zerorun/init.h). Nothing here knows ZeRO.
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_COMM_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_COMM_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "zerorun/device.h"
#include "zerorun/dtype.h"
#include "zerorun/kv_store.h"

namespace zerorun {

enum class ReduceOp { kSum, kAvg };

// The handle of one collective (c10d's Work): complete once the collective finished on this rank.
// Copyable; any thread may wait on it. A default Work is complete and OK.
class Work {
 public:
  Work() = default;
  Work(Event done, const char* op) : done_(std::move(done)), op_(op) {}
  static Work Done(absl::Status status, const char* op);  // Already complete with `status`.

  // Blocks until complete; the collective's result (errors below). DeadlineExceeded naming the
  // operation when `timeout` passes first: the collective goes on, waiting again is allowed.
  absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration()) const;
  bool Test() const { return done_.Query(); }  // Complete?
  // The result once complete; Unavailable while it runs.
  absl::Status status() const;

 private:
  Event done_;
  const char* op_ = "collective";
};

// Collectives across the job's ranks on BufferViews (in and out). Each runs on `stream` (work
// enqueued there before it runs first; the returned Work completes with it) or, with no stream,
// on the calling thread before the call returns. Collectives are issued by one thread, in the
// same order on every rank; a stream keeps that order, so a collective issued without a stream
// while another is queued on one is a caller error. The views' memory must stay valid and
// untouched by others until the Work completes.
//
// Errors (the Work's status): Aborted (a peer died or the connection broke; names this rank and
// the operation), DeadlineExceeded (peers did not arrive within the timeout), InvalidArgument (a
// view of the wrong size, dtype or device, a bad root; returned at once, nothing runs). After
// Aborted or DeadlineExceeded the communicator must not be used again.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual const char* backend() const = 0;  // "gloo", "nccl"
  // How this backend reduces 16-bit data, in words (the contract its tests hold it to).
  virtual const char* reduction16() const = 0;

  // data becomes the element-wise reduction over all ranks (fp32).
  virtual Work AllReduce(BufferView data, ReduceOp op, Stream* stream = nullptr) = 0;
  // in: world_size() shards of `shard` = out.count elements (fp32, bf16 or fp16), clobbered
  // (partial sums). out (fp32, or in's dtype) receives the reduction of every rank's shard
  // rank(). For fp32 in, out may be in's own shard rank() (in place: no copy).
  virtual Work ReduceScatter(BufferView in, BufferView out, ReduceOp op,
                             Stream* stream = nullptr) = 0;
  // in: this rank's shard; out: world_size() shards of in.count elements, same dtype; afterwards
  // out holds every rank's shard in rank order. in may be out's shard rank() (in place).
  virtual Work AllGather(BufferView in, BufferView out, Stream* stream = nullptr) = 0;
  // data of rank `root` is copied to every rank (any dtype).
  virtual Work Broadcast(BufferView data, int root, Stream* stream = nullptr) = 0;
  virtual Work Barrier(Stream* stream = nullptr) = 0;
};

// The checks every backend makes before a collective runs: InvalidArgument naming the operation,
// the view and the fix, or OK.
absl::Status CheckReduceScatter(const Communicator& comm, const BufferView& in,
                                const BufferView& out);
absl::Status CheckAllGather(const Communicator& comm, const BufferView& in, const BufferView& out);
absl::Status CheckRoot(const Communicator& comm, int root);

struct CommOptions {
  std::string name = "world";          // Store keys are "<name>/...": one name per communicator.
  std::string hostname = "127.0.0.1";  // Address this rank listens on for its peers.
  absl::Duration timeout = absl::Minutes(5);  // Per collective and for the rendezvous.
  size_t segment_bytes = 1 << 20;             // Ring segment: bounds the receive buffer, pipelines.
};

// The one place the build's backends are chosen: a CPU device gets Gloo; a CUDA device NCCL
// where the build has it (Unimplemented naming the fix otherwise). Connects `world_size` ranks
// through `store` (every rank calls this with the same options); `store` is used only during the
// call. DeadlineExceeded when a peer never shows up.
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(Device device, KvStore& store,
                                                                 int rank, int world_size,
                                                                 const CommOptions& options);
// The NCCL backend on CUDA device `index` (CreateCommunicator's choice for a GPU; Unimplemented
// in a build without CUDA). Rank 0's unique id goes through `store`; init is non-blocking and
// bounded by options.timeout (DeadlineExceeded naming the ranks that never arrived, the
// communicator aborted). Collectives run on one communication stream of its own, after the
// caller's stream's work (events) and before its later work; their Work handles are completed
// by a watchdog thread that aborts the communicator (ncclCommAbort) when one runs past the
// timeout or NCCL reports an error, failing it and every later one naming rank and operation.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(KvStore& store, int rank,
                                                                     int world_size, int index,
                                                                     const CommOptions& options);
// The Gloo backend itself (CreateCommunicator's choice for the CPU). Sets SIGPIPE to ignored
// when it has the default action (so a peer dying mid-send is Aborted, not a signal).
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(KvStore& store, int rank,
                                                                     int world_size,
                                                                     const CommOptions& options);

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_COMM_H_
