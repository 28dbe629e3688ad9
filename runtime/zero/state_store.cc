// StateStore's shared bookkeeping and the in-memory store (every array one Buffer, in state order).
#include "zerorun/state_store.h"

#include <array>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace zerorun {

const char* MemorySpaceName(MemorySpace space) {
  switch (space) {
    case MemorySpace::kDevice:
      return "device";
    case MemorySpace::kHost:
      return "host";
    case MemorySpace::kNvme:
      return "nvme";
  }
  return "?";
}

size_t StateLayout::elements() const {
  size_t n = 0;
  for (const Chunk& c : chunks) n += c.count;
  return n;
}

StateStore::StateStore(StateLayout layout) : layout_(std::move(layout)) {
  size_t at = 0;
  for (const StateLayout::Chunk& c : layout_.chunks) {
    offsets_.push_back(at);
    at += c.count;
  }
}

namespace {

class MemoryStateStore final : public StateStore {
 public:
  MemoryStateStore(StateLayout layout, MemorySpace space)
      : StateStore(std::move(layout)), space_(space) {}
  absl::Status Allocate(Allocator& allocator) {
    for (int a = 0; a < kStateArrays; ++a) {
      const StateArray array = static_cast<StateArray>(a);
      const size_t bytes = layout().element_bytes(array);
      if (bytes == 0) continue;
      const DType dtype = bytes == 2 ? layout().grad_dtype : DType::kFp32;
      absl::StatusOr<Buffer> buffer = Buffer::Allocate(allocator, layout().elements(), dtype);
      if (!buffer.ok()) {
        return absl::Status(buffer.status().code(),
                            absl::StrCat("optimizer state in ", MemorySpaceName(space_),
                                         " memory: ", buffer.status().message()));
      }
      arrays_[static_cast<size_t>(a)] = *std::move(buffer);
    }
    return absl::OkStatus();
  }

  MemorySpace space() const override { return space_; }
  void* Data(size_t k, StateArray a) override {
    const Buffer& b = arrays_[static_cast<size_t>(a)];
    if (b.size() == 0) return nullptr;
    return static_cast<char*>(b.view().data) + offset(k) * layout().element_bytes(a);
  }
  absl::Status Begin() override { return absl::OkStatus(); }
  absl::StatusOr<Chunk> Acquire(size_t k) override {
    return Chunk{static_cast<float*>(Data(k, StateArray::kMaster)),
                 static_cast<float*>(Data(k, StateArray::kM)),
                 static_cast<float*>(Data(k, StateArray::kV)), Data(k, StateArray::kGrad)};
  }
  void Release(size_t) override {}
  absl::Status Finish() override { return absl::OkStatus(); }
  absl::Status Read(size_t k, StateArray a, void* out) override {
    const void* in = Data(k, a);
    if (in == nullptr) return absl::InternalError("this state store does not hold that array");
    std::memcpy(out, in, layout().chunks[k].count * layout().element_bytes(a));
    return absl::OkStatus();
  }
  absl::Status Write(size_t k, StateArray a, const void* in) override {
    void* out = Data(k, a);
    if (out == nullptr) return absl::InternalError("this state store does not hold that array");
    if (out != in) std::memcpy(out, in, layout().chunks[k].count * layout().element_bytes(a));
    return absl::OkStatus();
  }
  void ZeroGrads() override {
    const Buffer& g = arrays_[static_cast<size_t>(StateArray::kGrad)];
    if (g.size() > 0) std::memset(g.view().data, 0, g.view().bytes());
  }

 private:
  const MemorySpace space_;
  std::array<Buffer, kStateArrays> arrays_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StateStore>> CreateMemoryStateStore(StateLayout layout,
                                                                   MemorySpace space,
                                                                   Allocator& allocator) {
  auto store = std::make_unique<MemoryStateStore>(std::move(layout), space);
  if (absl::Status s = store->Allocate(allocator); !s.ok()) return s;
  return store;
}

}  // namespace zerorun
