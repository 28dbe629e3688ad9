// NCCL backend of Communicator (builds with CUDA only): the unique id through the KV store,
// non-blocking init bounded by the timeout (naming the ranks that never arrived), one
// communication stream ordered after the caller's by events, Work handles completed by the
// CollectiveWatchdog, which turns a stuck collective or NCCL's asynchronous error into
// ncclCommAbort and an error naming the rank and the operation.
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "comm/watchdog.h"
#include "kernels/cuda_status.h"
#include "zerorun/comm.h"
#include "zerorun/cuda_kernels.h"
#include "zerorun/flight_recorder.h"

namespace zerorun {
namespace {

using cuda::FromCuda;

absl::Status FromNccl(ncclResult_t r, const std::string& what) {
  if (r == ncclSuccess || r == ncclInProgress) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", ncclGetErrorString(r)));
}

// The communicator's asynchronous state: ncclSuccess, ncclInProgress, or its error.
ncclResult_t AsyncState(ncclComm_t comm) {
  ncclResult_t state = ncclSuccess;
  const ncclResult_t r = ncclCommGetAsyncError(comm, &state);
  return r != ncclSuccess ? r : state;
}

ncclDataType_t NcclType(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return ncclFloat32;
    case DType::kBf16:
      return ncclBfloat16;
    case DType::kFp16:
      return ncclFloat16;
  }
  return ncclFloat32;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int rank, int world_size, int index,
                   std::unique_ptr<Stream> stream, float* scratch, const CommOptions& options)
      : comm_(comm),
        rank_(rank),
        world_size_(world_size),
        index_(index),
        stream_(std::move(stream)),
        scratch_(scratch),
        watchdog_(rank, world_size, options.timeout,
                  {[comm] {
                     const ncclResult_t state = AsyncState(comm);
                     return state == ncclSuccess || state == ncclInProgress
                                ? absl::OkStatus()
                                : absl::InternalError(
                                      absl::StrCat("NCCL reported ", ncclGetErrorString(state)));
                   },
                   [comm] { static_cast<void>(ncclCommAbort(comm)); }}) {}

  ~NcclCommunicator() override {
    static_cast<void>(cudaSetDevice(index_));
    // Idle before destroying: what is queued finishes (or the watchdog aborts it: the comm is
    // then gone already).
    static_cast<void>(stream_->Record().Wait());
    if (watchdog_.aborted().ok()) static_cast<void>(ncclCommDestroy(comm_));
    static_cast<void>(cudaFree(scratch_));
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  const char* backend() const override { return "nccl"; }
  const char* reduction16() const override {
    return "NCCL's native bf16/fp16 reduction: each step of its ring or tree adds two 16-bit "
           "values in fp32 and rounds the sum to the 16-bit type (nearest even), up to "
           "world_size - 1 roundings; an fp32 result is the 16-bit result widened exactly";
  }

  Work AllReduce(BufferView data, ReduceOp op, Stream* stream) override {
    if (absl::Status s = OnMine("all_reduce", {data}); !s.ok()) return Work::Done(s, "all_reduce");
    return Launch("all_reduce", data.bytes(), stream, [=, this](cudaStream_t s) {
      return FromNccl(
          ncclAllReduce(data.data, data.data, data.count, NcclType(data.dtype), Op(op), comm_, s),
          "ncclAllReduce");
    });
  }

  Work ReduceScatter(BufferView in, BufferView out, ReduceOp op, Stream* stream) override {
    constexpr const char* kOp = "reduce_scatter";
    absl::Status s = CheckReduceScatter(*this, in, out);
    if (s.ok()) s = OnMine(kOp, {in, out});
    if (!s.ok()) return Work::Done(s, kOp);
    // A wider out: reduce into in's own shard (in is clobbered by contract), then widen.
    const BufferView mine = in.Slice(static_cast<size_t>(rank_) * out.count, out.count);
    const bool widen = in.dtype != out.dtype;
    const BufferView into = widen ? mine : out;
    return Launch(kOp, in.bytes(), stream, [=, this](cudaStream_t s) {
      absl::Status status = FromNccl(
          ncclReduceScatter(in.data, into.data, out.count, NcclType(in.dtype), Op(op), comm_, s),
          "ncclReduceScatter");
      if (!status.ok() || !widen) return status;
      return cuda::ToFloatDevice(in.dtype, static_cast<const uint16_t*>(mine.data),
                                 static_cast<float*>(out.data), out.count, s);
    });
  }

  Work AllGather(BufferView in, BufferView out, Stream* stream) override {
    absl::Status s = CheckAllGather(*this, in, out);
    if (s.ok()) s = OnMine("all_gather", {in, out});
    if (!s.ok()) return Work::Done(s, "all_gather");
    return Launch("all_gather", out.bytes(), stream, [=, this](cudaStream_t s) {
      return FromNccl(ncclAllGather(in.data, out.data, in.count, NcclType(in.dtype), comm_, s),
                      "ncclAllGather");
    });
  }

  Work Broadcast(BufferView data, int root, Stream* stream) override {
    absl::Status s = CheckRoot(*this, root);
    if (s.ok()) s = OnMine("broadcast", {data});
    if (!s.ok()) return Work::Done(s, "broadcast");
    return Launch("broadcast", data.bytes(), stream, [=, this](cudaStream_t s) {
      return FromNccl(
          ncclBroadcast(data.data, data.data, data.count, NcclType(data.dtype), root, comm_, s),
          "ncclBroadcast");
    });
  }

  Work Barrier(Stream* stream) override {  // NCCL has none: a one-element all-reduce.
    return Launch("barrier", sizeof(float), stream, [this](cudaStream_t s) {
      return FromNccl(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, s),
                      "ncclAllReduce");
    });
  }

 private:
  static ncclRedOp_t Op(ReduceOp op) { return op == ReduceOp::kAvg ? ncclAvg : ncclSum; }

  absl::Status OnMine(const char* op, std::initializer_list<BufferView> views) const {
    for (const BufferView& v : views) {
      if (v.device != Device::Cuda(index_)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rank ", rank_, ": ", op, " on nccl takes memory on cuda:", index_, ", not a view on ",
            v.device.ToString(), ". Fix: a buffer from the cuda:", index_, " allocator"));
      }
    }
    return absl::OkStatus();
  }

  // Issues `launch` on the communication stream after the caller's work (an event), hands the
  // completion to the watchdog, and orders the caller's later work after it (an event). Without
  // a caller stream: waits for the result.
  template <typename Fn>
  Work Launch(const char* op, size_t bytes, Stream* caller, Fn launch) {
    if (absl::Status s = watchdog_.aborted(); !s.ok()) return Work::Done(s, op);
    if (caller != nullptr) stream_->Wait(caller->Record());
    FlightRecorder& recorder = FlightRecorder::Global();
    const uint64_t seq = recorder.Begin(op, bytes, rank_, world_size_);
    stream_->Enqueue([&] {
      ncclResult_t r = ncclSuccess;
      absl::Status s = launch(static_cast<cudaStream_t>(stream_->native()));
      // A non-blocking communicator may still be enqueuing: wait for it to settle.
      while (s.ok() && (r = AsyncState(comm_)) == ncclInProgress)
        absl::SleepFor(absl::Microseconds(5));
      if (s.ok()) s = FromNccl(r, op);
      return s;
    });
    Event done = stream_->Record();
    Work work = watchdog_.Watch(op, [done, seq]() -> absl::StatusOr<bool> {
      if (!done.Query()) return false;
      FlightRecorder::Global().End(seq);
      if (absl::Status s = done.Wait(); !s.ok()) return s;
      return true;
    });
    if (caller != nullptr) {
      caller->Wait(done);
      return work;
    }
    return Work::Done(work.Wait(), op);
  }

  const ncclComm_t comm_;
  const int rank_, world_size_, index_;
  std::unique_ptr<Stream> stream_;  // The communication stream.
  float* scratch_;                  // One device float for Barrier.
  CollectiveWatchdog watchdog_;     // Last: stopped before the rest goes.
};

// Waits for a non-blocking init; on timeout aborts and names the ranks that never arrived.
absl::Status AwaitInit(ncclComm_t comm, KvStore& store, int rank, int world_size,
                       const CommOptions& options) {
  const absl::Time deadline = absl::Now() + options.timeout;
  ncclResult_t state;
  while ((state = AsyncState(comm)) == ncclInProgress && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (state == ncclSuccess) return absl::OkStatus();
  static_cast<void>(ncclCommAbort(comm));
  if (state != ncclInProgress) {
    return absl::AbortedError(absl::StrCat("rank ", rank, " of ", world_size,
                                           ": NCCL init failed: ", ncclGetErrorString(state)));
  }
  std::vector<int> missing;
  for (int r = 0; r < world_size; ++r) {
    if (!store.Get(absl::StrCat(options.name, "/nccl/arrived/", r), absl::ZeroDuration()).ok()) {
      missing.push_back(r);
    }
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "rank ", rank, " of ", world_size, ": NCCL init did not complete within ",
      absl::FormatDuration(options.timeout),
      missing.empty() ? std::string(" (every rank arrived: a peer hangs in init)")
                      : absl::StrCat(": rank(s) ", absl::StrJoin(missing, ","), " never arrived"),
      "; the communicator was aborted"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(KvStore& store, int rank,
                                                                     int world_size, int index,
                                                                     const CommOptions& options) {
  const std::string where = absl::StrCat("rank ", rank, " on cuda:", index);
  if (absl::Status s = FromCuda(cudaSetDevice(index), where.c_str()); !s.ok()) return s;
  if (absl::Status s = store.Set(absl::StrCat(options.name, "/nccl/arrived/", rank), "1");
      !s.ok()) {
    return s;
  }
  const std::string id_key = absl::StrCat(options.name, "/nccl/id");
  ncclUniqueId id;
  if (rank == 0) {
    if (absl::Status s = FromNccl(ncclGetUniqueId(&id), "ncclGetUniqueId"); !s.ok()) return s;
    absl::Status s = store.Set(
        id_key, absl::BytesToHexString(absl::string_view(id.internal, sizeof(id.internal))));
    if (!s.ok()) return s;
  } else {
    absl::StatusOr<std::string> hex = store.Get(id_key, options.timeout);
    if (!hex.ok()) {
      return absl::Status(hex.status().code(),
                          absl::StrCat(where, ": NCCL's unique id from rank 0 never came: ",
                                       hex.status().message()));
    }
    const std::string bytes = absl::HexStringToBytes(*hex);
    if (bytes.size() != sizeof(id.internal)) {
      return absl::InternalError(absl::StrCat(where, ": a malformed NCCL id at ", id_key));
    }
    std::copy(bytes.begin(), bytes.end(), id.internal);
  }
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  if (absl::Status s = FromNccl(ncclCommInitRankConfig(&comm, world_size, id, rank, &config),
                                absl::StrCat(where, ": ncclCommInitRankConfig"));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = AwaitInit(comm, store, rank, world_size, options); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Stream>> stream = CreateCudaStream(index);
  float* scratch = nullptr;
  absl::Status s = stream.status();
  if (s.ok()) s = FromCuda(cudaMalloc(&scratch, sizeof(float)), "cudaMalloc");
  if (!s.ok()) {
    static_cast<void>(ncclCommDestroy(comm));
    return s;
  }
  return std::make_unique<NcclCommunicator>(comm, rank, world_size, index, *std::move(stream),
                                            scratch, options);
}

}  // namespace zerorun
