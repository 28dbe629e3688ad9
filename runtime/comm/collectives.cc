// What every communicator backend shares: the Work handle, the argument checks made before a
// collective runs, and the factory that picks the backend for a device.
#include "absl/strings/str_cat.h"
#include "zerorun/comm.h"

namespace zerorun {

Work Work::Done(absl::Status status, const char* op) {
  Event event = Event::Pending();
  event.Complete(std::move(status));
  return Work(std::move(event), op);
}

absl::Status Work::Wait(absl::Duration timeout) const {
  absl::Status status = done_.Wait(timeout);
  if (absl::IsDeadlineExceeded(status) && !done_.Query()) {
    return absl::DeadlineExceededError(absl::StrCat(op_, ": ", status.message()));
  }
  return status;
}

absl::Status Work::status() const {
  if (!done_.Query()) return absl::UnavailableError(absl::StrCat(op_, " is still running"));
  return done_.Wait();
}

namespace {

absl::Status Invalid(const Communicator& comm, const char* op, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("rank ", comm.rank(), " of ", comm.world_size(), ": ", op, ": ", what));
}

bool SameDevice(const BufferView& a, const BufferView& b) { return a.device == b.device; }

// The views share memory without being the same view.
bool PartlyOverlap(const BufferView& a, const BufferView& b) {
  const char* x = static_cast<const char*>(a.data);
  const char* y = static_cast<const char*>(b.data);
  return x < y + b.bytes() && y < x + a.bytes() && !a.SameMemory(b);
}

}  // namespace

absl::Status CheckReduceScatter(const Communicator& comm, const BufferView& in,
                                const BufferView& out) {
  const size_t world = static_cast<size_t>(comm.world_size());
  if (in.count != out.count * world) {
    return Invalid(comm, "reduce_scatter",
                   absl::StrCat("in holds ", in.count, " elements, not world_size x out = ", world,
                                " x ", out.count, ". Fix: in is every rank's shard, out one"));
  }
  if (out.dtype != DType::kFp32 && out.dtype != in.dtype) {
    return Invalid(comm, "reduce_scatter",
                   absl::StrCat(DTypeName(in.dtype), " in reduces into fp32 or ",
                                DTypeName(in.dtype), ", not ", DTypeName(out.dtype)));
  }
  if (in.dtype == DType::kFp32 && out.dtype == DType::kFp32) {
    const BufferView mine = in.Slice(static_cast<size_t>(comm.rank()) * out.count, out.count);
    if (PartlyOverlap(out, in) && !mine.SameMemory(out)) {
      return Invalid(comm, "reduce_scatter", "out overlaps in but is not in's shard rank()");
    }
  }
  if (!SameDevice(in, out)) {
    return Invalid(
        comm, "reduce_scatter",
        absl::StrCat("in is on ", in.device.ToString(), ", out on ", out.device.ToString()));
  }
  return absl::OkStatus();
}

absl::Status CheckAllGather(const Communicator& comm, const BufferView& in, const BufferView& out) {
  const size_t world = static_cast<size_t>(comm.world_size());
  if (out.count != in.count * world || out.dtype != in.dtype || !SameDevice(in, out)) {
    return Invalid(
        comm, "all_gather",
        absl::StrCat("out must be world_size x in = ", world, " x ", in.count, " ",
                     DTypeName(in.dtype), " on ", in.device.ToString(), ", not ", out.count, " ",
                     DTypeName(out.dtype), " on ", out.device.ToString()));
  }
  const BufferView mine = out.Slice(static_cast<size_t>(comm.rank()) * in.count, in.count);
  if (PartlyOverlap(in, out) && !mine.SameMemory(in)) {
    return Invalid(comm, "all_gather", "in overlaps out but is not out's shard rank()");
  }
  return absl::OkStatus();
}

absl::Status CheckRoot(const Communicator& comm, int root) {
  if (root >= 0 && root < comm.world_size()) return absl::OkStatus();
  return Invalid(comm, "broadcast",
                 absl::StrCat("root ", root, " is not a rank of ", comm.world_size()));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(Device device, KvStore& store,
                                                                 int rank, int world_size,
                                                                 const CommOptions& options) {
  if (device.kind == DeviceKind::kCpu) {
    return CreateGlooCommunicator(store, rank, world_size, options);
  }
  return CreateNcclCommunicator(store, rank, world_size, device.index, options);
}

}  // namespace zerorun
