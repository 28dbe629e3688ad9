// Gloo backend of Communicator: Gloo's allreduce/broadcast/barrier, and ring reduce-scatter and
// all-gather written on UnboundBuffer send/recv (Debian's Gloo has no usable reduce-scatter).
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <gloo/types.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/cpu_clones.h"
#include "zerorun/comm.h"
#include "zerorun/dtype.h"
#include "zerorun/flight_recorder.h"

namespace zerorun {
namespace {

constexpr uint8_t kSlotPrefix = 0x5a;  // Our ring collectives' slot namespace.

// dst += src; restrict lets the compiler vectorize without an overlap check.
ZR_CPU_CLONES void AddInto(float* __restrict dst, const float* __restrict src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

// Our KvStore seen as Gloo's Store. Gloo's interface has no error channel: failures are thrown
// as gloo::IoException, the one exception this project raises on purpose.
class GlooStoreAdapter : public ::gloo::rendezvous::Store {
 public:
  GlooStoreAdapter(KvStore& store, absl::Duration timeout) : store_(store), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    absl::Status s = store_.Set(key, std::string(data.begin(), data.end()));
    if (!s.ok()) throw ::gloo::IoException(std::string(s.message()));
  }
  std::vector<char> get(const std::string& key) override {
    absl::StatusOr<std::string> value = store_.Get(key, timeout_);
    if (!value.ok()) throw ::gloo::IoException(std::string(value.status().message()));
    return std::vector<char>(value->begin(), value->end());
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, ToChrono(timeout_)); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    for (const std::string& key : keys) {
      absl::StatusOr<std::string> value = store_.Get(key, absl::FromChrono(timeout));
      if (!value.ok()) throw ::gloo::IoException(std::string(value.status().message()));
    }
  }

 private:
  static std::chrono::milliseconds ToChrono(absl::Duration d) {
    return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
  }
  KvStore& store_;
  const absl::Duration timeout_;
};

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<::gloo::rendezvous::Context> context, const CommOptions& options)
      : context_(std::move(context)),
        options_(options),
        timeout_(absl::ToInt64Milliseconds(options.timeout)),
        segment_bytes_(options.segment_bytes) {}

  int rank() const override { return context_->rank; }
  int world_size() const override { return context_->size; }
  const char* backend() const override { return "gloo"; }
  const char* reduction16() const override {
    return "ring reduce-scatter: partial sums cross the wire in the 16-bit dtype, each hop adds "
           "in fp32 and rounds to nearest even once; the last hop writes fp32 unrounded";
  }

  Work AllReduce(BufferView data, ReduceOp op, Stream* stream) override {
    if (absl::Status s = HostFp32("all_reduce", data); !s.ok()) return Work::Done(s, "all_reduce");
    float* p = static_cast<float*>(data.data);
    const size_t n = data.count;
    return Launch("all_reduce", n * 4, stream, [this, p, n, op] { return DoAllReduce(p, n, op); });
  }

  Work ReduceScatter(BufferView in, BufferView out, ReduceOp op, Stream* stream) override {
    constexpr const char* kOp = "reduce_scatter";
    if (absl::Status s = CheckReduceScatter(*this, in, out); !s.ok()) return Work::Done(s, kOp);
    const size_t shard = out.count;
    const size_t bytes = shard * SizeOf(in.dtype) * static_cast<size_t>(world_size());
    if (in.dtype == DType::kFp32) {
      float* data = static_cast<float*>(in.data);
      float* dst = static_cast<float*>(out.data);
      return Launch(kOp, bytes, stream, [this, data, dst, shard, op] {
        absl::Status s = DoReduceScatter(data, shard, op);
        float* mine = data + static_cast<size_t>(rank()) * shard;
        if (s.ok() && dst != mine) std::memcpy(dst, mine, shard * sizeof(float));
        return s;
      });
    }
    uint16_t* data = static_cast<uint16_t*>(in.data);
    const DType dtype = in.dtype;
    const BufferView result = out;
    return Launch(kOp, bytes, stream, [this, data, dtype, result, shard, op] {
      if (result.dtype == DType::kFp32) {
        return DoReduceScatter16(data, shard, dtype, op, static_cast<float*>(result.data));
      }
      // A 16-bit result: the fp32 sum rounded once at the end.
      if (wide_out_.size() < shard) wide_out_.resize(shard);
      absl::Status s = DoReduceScatter16(data, shard, dtype, op, wide_out_.data());
      if (s.ok()) FromFloat(dtype, wide_out_.data(), static_cast<uint16_t*>(result.data), shard);
      return s;
    });
  }

  Work AllGather(BufferView in, BufferView out, Stream* stream) override {
    if (absl::Status s = CheckAllGather(*this, in, out); !s.ok())
      return Work::Done(s, "all_gather");
    char* data = static_cast<char*>(out.data);
    const char* mine = static_cast<const char*>(in.data);
    const size_t shard_bytes = in.bytes();
    return Launch("all_gather", out.bytes(), stream, [this, data, mine, shard_bytes] {
      char* slot = data + static_cast<size_t>(rank()) * shard_bytes;
      if (slot != mine) std::memcpy(slot, mine, shard_bytes);
      return AllGatherBytes(data, shard_bytes);
    });
  }

  Work Broadcast(BufferView data, int root, Stream* stream) override {
    absl::Status s = CheckRoot(*this, root);
    if (s.ok() && data.device != Device::Cpu()) s = NotHost("broadcast", data);
    if (!s.ok()) return Work::Done(s, "broadcast");
    char* p = static_cast<char*>(data.data);
    const size_t bytes = data.bytes();
    return Launch("broadcast", bytes, stream, [this, p, bytes, root]() -> absl::Status {
      if (world_size() == 1 || bytes == 0) return absl::OkStatus();
      return Guard("broadcast", [&] {
        ::gloo::BroadcastOptions opts(context_);
        opts.setOutput(reinterpret_cast<uint8_t*>(p), bytes);
        opts.setRoot(root);
        opts.setTag(NextTag());
        opts.setTimeout(timeout_);
        ::gloo::broadcast(opts);
      });
    });
  }

  Work Barrier(Stream* stream) override {
    return Launch("barrier", 0, stream, [this]() -> absl::Status {
      if (world_size() == 1) return absl::OkStatus();
      return Guard("barrier", [&] {
        ::gloo::BarrierOptions opts(context_);
        opts.setTag(NextTag());
        opts.setTimeout(timeout_);
        ::gloo::barrier(opts);
      });
    });
  }

 private:
  // Runs `fn` now (no stream) or enqueued on `stream`, recorded in the flight recorder while it
  // runs (hang reports name it).
  template <typename Fn>
  Work Launch(const char* op, size_t bytes, Stream* stream, Fn fn) {
    auto task = [this, op, bytes, fn = std::move(fn)]() -> absl::Status {
      FlightRecorder& recorder = FlightRecorder::Global();
      const uint64_t seq = recorder.Begin(op, bytes, rank(), world_size());
      absl::Status status = fn();
      recorder.End(seq);
      return status;
    };
    if (stream == nullptr) return Work::Done(task(), op);
    stream->Enqueue(std::move(task));
    return Work(stream->Record(), op);
  }

  absl::Status NotHost(const char* op, const BufferView& view) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", rank(), ": ", op, " on gloo takes host memory, not a view on ",
        view.device.ToString(), ". Fix: a CPU buffer, or the NCCL backend for device memory"));
  }

  absl::Status HostFp32(const char* op, const BufferView& view) const {
    if (view.device != Device::Cpu()) return NotHost(op, view);
    if (view.dtype != DType::kFp32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rank ", rank(), ": ", op, " on gloo takes fp32, not ", DTypeName(view.dtype)));
    }
    return absl::OkStatus();
  }

  absl::Status DoAllReduce(float* data, size_t n, ReduceOp op) {
    if (world_size() == 1 || n == 0) return absl::OkStatus();
    return Guard("all-reduce", [&] {
      ::gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, n);
      opts.setTag(NextTag());
      opts.setTimeout(timeout_);
      opts.setReduceFunction([](void* out, const void* a, const void* b, size_t count) {
        float* o = static_cast<float*>(out);
        const float* x = static_cast<const float*>(a);
        const float* y = static_cast<const float*>(b);
        for (size_t i = 0; i < count; ++i) o[i] = x[i] + y[i];
      });
      ::gloo::allreduce(opts);
      if (op == ReduceOp::kAvg) Scale(data, n);
    });
  }

  absl::Status DoReduceScatter(float* data, size_t shard, ReduceOp op) {
    if (world_size() == 1 || shard == 0) return absl::OkStatus();
    return Guard("reduce-scatter", [&] {
      RingReduceScatter(data, shard, [](float* dst, const float* src, size_t n, bool /*last*/) {
        AddInto(dst, src, n);
      });
      if (op == ReduceOp::kAvg) Scale(data + static_cast<size_t>(rank()) * shard, shard);
    });
  }

  absl::Status DoReduceScatter16(uint16_t* data, size_t shard, DType dtype, ReduceOp op,
                                 float* out) {
    uint16_t* mine = data + static_cast<size_t>(rank()) * shard;
    if (world_size() == 1 || shard == 0) {
      ToFloat(dtype, mine, out, shard);
      return absl::OkStatus();
    }
    return Guard("reduce-scatter", [&] {
      // Partial sums travel in the 16-bit dtype; every hop adds in fp32 and rounds once, and
      // the last hop writes this rank's sum to `out` unrounded.
      if (scratch_.size() < shard) scratch_.resize(shard);
      float* wide = scratch_.data();
      RingReduceScatter(data, shard, [&](uint16_t* dst, const uint16_t* src, size_t n, bool last) {
        ToFloat(dtype, src, wide, n);
        if (!last) {
          AddFloatInto(dtype, wide, dst, n);
          return;
        }
        float* o = out + (dst - mine);
        ToFloat(dtype, dst, o, n);
        AddInto(o, wide, n);
      });
      if (op == ReduceOp::kAvg) Scale(out, shard);
    });
  }

 private:
  uint32_t NextTag() { return next_tag_++; }

  // Ring reduce-scatter over `data` (world_size() chunks of `shard` elements of T). Step s sends
  // chunk r-s-1 (complete after step s-1) to the right and folds chunk r-s-2 from the left into
  // place with accumulate(dst, received, n, last_step); after p-1 steps chunk r holds the sum.
  // Every segment's send and receive is posted up front and folded as it lands.
  template <typename T, typename Accumulate>
  void RingReduceScatter(T* data, size_t shard, Accumulate&& accumulate) {
    const int p = world_size(), r = rank();
    auto buffer = context_->createUnboundBuffer(data, shard * p * sizeof(T));
    // Kept between calls: a fresh shard-sized buffer would page-fault on every call.
    const size_t tmp_floats = (shard * sizeof(T) + sizeof(float) - 1) / sizeof(float);
    if (recv_.size() < tmp_floats) recv_.resize(tmp_floats);
    T* tmp = reinterpret_cast<T*>(recv_.data());
    auto tmp_buffer = context_->createUnboundBuffer(tmp, shard * sizeof(T));
    const int left = (r + p - 1) % p, right = (r + 1) % p;
    const size_t segment = SegmentFor(shard, sizeof(T));
    for (int s = 0; s < p - 1; ++s) {
      const size_t send_chunk = static_cast<size_t>(((r - s - 1) % p + p) % p);
      const size_t recv_chunk = static_cast<size_t>(((r - s - 2) % p + p) % p);
      const uint32_t tag = NextTag();
      size_t segments = 0;
      for (size_t offset = 0; offset < shard; offset += segment, ++segments) {
        const size_t count = std::min(segment, shard - offset);
        const uint64_t slot = Slot(tag, segments);
        tmp_buffer->recv(left, slot, offset * sizeof(T), count * sizeof(T));
        buffer->send(right, slot, (send_chunk * shard + offset) * sizeof(T), count * sizeof(T));
      }
      for (size_t k = 0; k < segments; ++k) {
        // Segments of one pair arrive in order; fold segment k once it is in.
        Wait(tmp_buffer->waitRecv(nullptr, std::chrono::milliseconds(timeout_)), "receive");
        const size_t offset = k * segment, count = std::min(segment, shard - offset);
        accumulate(data + recv_chunk * shard + offset, tmp + offset, count, s == p - 2);
      }
      for (size_t k = 0; k < segments; ++k) {
        Wait(buffer->waitSend(nullptr, std::chrono::milliseconds(timeout_)), "send");
      }
    }
  }

  // Ring all-gather of `shard_bytes` per rank, in place: step s forwards chunk r-s to the right
  // and receives chunk r-s-1.
  absl::Status AllGatherBytes(char* data, size_t shard_bytes) {
    const int p = world_size(), r = rank();
    if (p == 1 || shard_bytes == 0) return absl::OkStatus();
    return Guard("all-gather", [&] {
      auto buffer = context_->createUnboundBuffer(data, shard_bytes * p);
      const int left = (r + p - 1) % p, right = (r + 1) % p;
      const size_t segment = SegmentFor(shard_bytes, 1);
      for (int s = 0; s < p - 1; ++s) {
        const size_t send_chunk = static_cast<size_t>(((r - s) % p + p) % p);
        const size_t recv_chunk = static_cast<size_t>(((r - s - 1) % p + p) % p);
        const uint32_t tag = NextTag();
        size_t segments = 0;
        for (size_t offset = 0; offset < shard_bytes; offset += segment, ++segments) {
          const size_t count = std::min(segment, shard_bytes - offset);
          const uint64_t slot = Slot(tag, segments);
          buffer->recv(left, slot, recv_chunk * shard_bytes + offset, count);
          buffer->send(right, slot, send_chunk * shard_bytes + offset, count);
        }
        for (size_t k = 0; k < segments; ++k) {
          Wait(buffer->waitRecv(nullptr, std::chrono::milliseconds(timeout_)), "receive");
        }
        for (size_t k = 0; k < segments; ++k) {
          Wait(buffer->waitSend(nullptr, std::chrono::milliseconds(timeout_)), "send");
        }
      }
    });
  }

  // Segment size in elements of `elem` bytes for a chunk: the configured byte size, grown so a
  // step needs at most 256 segments (the slot's per-op byte).
  size_t SegmentFor(size_t shard, size_t elem) const {
    return std::max(std::max<size_t>(1, segment_bytes_ / elem), (shard + 255) / 256);
  }

  static uint64_t Slot(uint32_t tag, size_t segment) {
    return ::gloo::Slot::build(kSlotPrefix, tag) + static_cast<uint8_t>(segment);
  }

  void Scale(float* data, size_t n) const {
    const float inv = 1.0f / static_cast<float>(world_size());
    for (size_t i = 0; i < n; ++i) data[i] *= inv;
  }

  static void Wait(bool ok, const char* what) {
    if (!ok) throw ::gloo::IoException(absl::StrCat(what, " was aborted"));
  }

  // Runs a collective, turning Gloo's exceptions into a Status that names rank and operation.
  template <typename Fn>
  absl::Status Guard(const char* op, Fn&& fn) {
    try {
      fn();
      return absl::OkStatus();
    } catch (const ::gloo::Exception& e) {
      const std::string what = e.what();
      const std::string text =
          absl::StrCat("rank ", rank(), " of ", world_size(), ": ", op, " on communicator '",
                       options_.name, "' failed: ", what);
      if (absl::StrContains(what, "Timed out") || absl::StrContains(what, "timed out")) {
        return absl::DeadlineExceededError(absl::StrCat(text, " (timeout ",
                                                        absl::FormatDuration(options_.timeout),
                                                        ": a peer is stuck or gone)"));
      }
      return absl::AbortedError(absl::StrCat(text, " (a peer rank died or disconnected)"));
    }
  }

  std::shared_ptr<::gloo::rendezvous::Context> context_;
  const CommOptions options_;
  const std::chrono::milliseconds timeout_;
  const size_t segment_bytes_;
  uint32_t next_tag_ = 1;
  std::vector<float> recv_;      // Reduce-scatter receive buffer.
  std::vector<float> scratch_;   // 16-bit partial sums widened to fp32.
  std::vector<float> wide_out_;  // A 16-bit reduce-scatter's fp32 result before rounding.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(KvStore& store, int rank,
                                                                     int world_size,
                                                                     const CommOptions& options) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is not within a world of ", world_size));
  }
  // Debian's Gloo writes to its sockets without MSG_NOSIGNAL: a peer dying mid-collective would
  // kill this process with SIGPIPE instead of failing the collective with Aborted naming it.
  // Ignored as Python ignores it (torch ranks never see it); a handler of the program's stays.
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  try {
    GlooStoreAdapter adapter(store, options.timeout);
    ::gloo::rendezvous::PrefixStore prefixed(options.name, adapter);
    ::gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    auto device = ::gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<::gloo::rendezvous::Context>(rank, world_size);
    context->setTimeout(std::chrono::milliseconds(absl::ToInt64Milliseconds(options.timeout)));
    context->connectFullMesh(prefixed, device);
    return std::unique_ptr<Communicator>(new GlooCommunicator(std::move(context), options));
  } catch (const ::gloo::Exception& e) {
    const std::string what = e.what();
    const std::string text =
        absl::StrCat("rank ", rank, " of ", world_size, ": connecting communicator '", options.name,
                     "' failed: ", what);
    if (absl::StrContains(what, "not set within")) return absl::DeadlineExceededError(text);
    return absl::UnavailableError(text);
  }
}

}  // namespace zerorun
