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

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/cpu_clones.h"
#include "zerorun/comm.h"
#include "zerorun/dtype.h"

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

  absl::Status AllReduce(float* data, size_t n, ReduceOp op) override {
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

  absl::Status ReduceScatter(float* data, size_t shard, ReduceOp op) override {
    if (world_size() == 1 || shard == 0) return absl::OkStatus();
    return Guard("reduce-scatter", [&] {
      RingReduceScatter(data, shard, [](float* dst, const float* src, size_t n, bool /*last*/) {
        AddInto(dst, src, n);
      });
      if (op == ReduceOp::kAvg) Scale(data + static_cast<size_t>(rank()) * shard, shard);
    });
  }

  absl::Status ReduceScatter16(uint16_t* data, size_t shard, DType dtype, ReduceOp op,
                               float* out) override {
    if (dtype == DType::kFp32) {
      return absl::InvalidArgumentError("ReduceScatter16 takes bf16 or fp16, not fp32");
    }
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

  absl::Status AllGather(float* data, size_t shard) override {
    return AllGatherBytes(reinterpret_cast<char*>(data), shard * sizeof(float));
  }

  absl::Status AllGather16(uint16_t* data, size_t shard) override {
    return AllGatherBytes(reinterpret_cast<char*>(data), shard * sizeof(uint16_t));
  }

  absl::Status Broadcast(float* data, size_t n, int root) override {
    if (root < 0 || root >= world_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("broadcast root ", root, " is not a rank of ", world_size()));
    }
    if (world_size() == 1 || n == 0) return absl::OkStatus();
    return Guard("broadcast", [&] {
      ::gloo::BroadcastOptions opts(context_);
      opts.setOutput(data, n);
      opts.setRoot(root);
      opts.setTag(NextTag());
      opts.setTimeout(timeout_);
      ::gloo::broadcast(opts);
    });
  }

  absl::Status Barrier() override {
    if (world_size() == 1) return absl::OkStatus();
    return Guard("barrier", [&] {
      ::gloo::BarrierOptions opts(context_);
      opts.setTag(NextTag());
      opts.setTimeout(timeout_);
      ::gloo::barrier(opts);
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
  std::vector<float> recv_;     // Reduce-scatter receive buffer.
  std::vector<float> scratch_;  // 16-bit partial sums widened to fp32.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(KvStore& store, int rank,
                                                                     int world_size,
                                                                     const CommOptions& options) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is not within a world of ", world_size));
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
