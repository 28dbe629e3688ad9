// The optimizer state stores: in memory and on NVMe (a real swap file, O_DIRECT through io_uring)
// hold the same values, step to the same results through one Begin / Acquire / Release / Finish
// pass, read unwritten accumulators as zeros after ZeroGrads, and the memory store's buffers are
// what its allocator accounts. TSan runs the [state_store] tag.
#include "zerorun/state_store.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "offload/nvme_state_store.h"
#include "support/temp_dir.h"
#include "zerorun/optimizer.h"

namespace zerorun {
namespace {

// Two units, the first cut into chunks of at most 10 elements (sub_group_size 10).
StateLayout TestLayout(size_t grad_bytes) {
  StateLayout layout;
  layout.chunks = {{0, 0, 10}, {0, 10, 7}, {1, 0, 5}};
  layout.master_bytes = 4;
  layout.grad_bytes = grad_bytes;
  layout.grad_dtype = DType::kBf16;
  return layout;
}

float Value(int array, size_t k, size_t i) {
  return 0.25f * static_cast<float>(array + 1) + 0.01f * static_cast<float>(k * 16 + i);
}

// Chunk k's masters, m and v (Value; v squared: Adam's v is non-negative), written outside a pass.
void WriteState(StateStore& store, size_t k) {
  const size_t n = store.layout().chunks[k].count;
  for (StateArray a : {StateArray::kMaster, StateArray::kM, StateArray::kV}) {
    std::vector<float> values(n);
    for (size_t i = 0; i < n; ++i) values[i] = Value(static_cast<int>(a), k, i);
    if (a == StateArray::kV) {
      for (float& v : values) v *= v;
    }
    REQUIRE(store.Write(k, a, values.data()).ok());
  }
}

// Every chunk of each array (fp32), array after array, read outside a pass.
std::vector<float> ReadAll(StateStore& store, std::initializer_list<StateArray> arrays) {
  std::vector<float> all;
  for (StateArray a : arrays) {
    for (size_t k = 0; k < store.chunks(); ++k) {
      std::vector<float> out(store.layout().chunks[k].count);
      REQUIRE(store.Read(k, a, out.data()).ok());
      all.insert(all.end(), out.begin(), out.end());
    }
  }
  return all;
}

// Writes every array of every chunk, then runs two optimizer passes with gradients from the
// accumulator: what the engine does with a store.
std::vector<float> Exercise(StateStore& store) {
  const StateLayout& layout = store.layout();
  for (size_t k = 0; k < store.chunks(); ++k) {
    const size_t n = layout.chunks[k].count;
    WriteState(store, k);
    std::vector<float> grads(n);
    for (size_t i = 0; i < n; ++i) grads[i] = Value(3, k, i) - 0.3f;
    REQUIRE(store.Write(k, StateArray::kGrad, grads.data()).ok());
  }
  std::unique_ptr<Optimizer> adamw = CreateCpuAdamW(AdamWHyper{});
  for (int64_t step = 1; step <= 2; ++step) {
    REQUIRE(store.Begin().ok());
    for (size_t k = 0; k < store.chunks(); ++k) {
      absl::StatusOr<StateStore::Chunk> chunk = store.Acquire(k);
      REQUIRE(chunk.ok());
      REQUIRE(chunk->master != nullptr);
      REQUIRE(chunk->grad != nullptr);
      adamw->Step(step, 1e-2f, -1.0f, layout.chunks[k].count, chunk->master,
                  static_cast<const float*>(chunk->grad), chunk->m, chunk->v);
      store.Release(k);
    }
    REQUIRE(store.Finish().ok());
  }
  return ReadAll(store, {StateArray::kMaster, StateArray::kM, StateArray::kV});
}

TEST_CASE("Memory and NVMe state stores give identical optimizer results", "[state_store]") {
  testing::TempDir dir;
  AioOptions aio;
  aio.block_size = 4096;
  std::unique_ptr<Allocator> allocator = CreateHostAllocator();
  absl::StatusOr<std::unique_ptr<StateStore>> memory =
      CreateMemoryStateStore(TestLayout(4), MemorySpace::kDevice, *allocator);
  REQUIRE(memory.ok());
  absl::StatusOr<std::unique_ptr<NvmeStateStore>> nvme =
      NvmeStateStore::Create(dir.path(), TestLayout(4), aio);
  REQUIRE(nvme.ok());
  CHECK((*memory)->space() == MemorySpace::kDevice);
  CHECK((*nvme)->space() == MemorySpace::kNvme);
  const std::vector<float> a = Exercise(**memory);
  const std::vector<float> b = Exercise(**nvme);
  REQUIRE(a.size() == 3 * 22);
  REQUIRE(b.size() == a.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  // The step changed the masters (not a pass that did nothing).
  CHECK(a[0] != Value(0, 0, 0));
  CHECK((*nvme)->stats().bytes_read > 0);
}

// Seven chunks of sizes 3..9 (fp32 accumulators): what the engine does for three steps, two
// micro-batches each (accumulators read, added to and written back in the backward pass's
// order, last chunk first), a checkpoint-style rewrite of one chunk's masters between steps,
// then every array read back. With `zero_early` the accumulators are zeroed after the last
// Release, before Finish, as the engine does.
std::vector<float> Train(
    StateStore& store, bool zero_early, const std::function<void()>& after_pass = [] {}) {
  const StateLayout& layout = store.layout();
  for (size_t k = 0; k < store.chunks(); ++k) WriteState(store, k);
  std::unique_ptr<Optimizer> adamw = CreateCpuAdamW(AdamWHyper{});
  for (int64_t step = 1; step <= 3; ++step) {
    store.ZeroGrads();
    for (int micro = 0; micro < 2; ++micro) {
      for (size_t k = store.chunks(); k-- > 0;) {
        const size_t n = layout.chunks[k].count;
        std::vector<float> acc(n);
        REQUIRE(store.Read(k, StateArray::kGrad, acc.data()).ok());
        for (size_t i = 0; i < n; ++i) acc[i] += Value(micro + static_cast<int>(step), k, i) - 0.5f;
        REQUIRE(store.Write(k, StateArray::kGrad, acc.data()).ok());
      }
    }
    if (step == 2) {  // A chunk the ring has read ahead for this pass, rewritten.
      std::vector<float> masters(layout.chunks[1].count, 0.125f);
      REQUIRE(store.Write(1, StateArray::kMaster, masters.data()).ok());
    }
    REQUIRE(store.Begin().ok());
    for (size_t k = 0; k < store.chunks(); ++k) {
      absl::StatusOr<StateStore::Chunk> chunk = store.Acquire(k);
      REQUIRE(chunk.ok());
      adamw->Step(step, 1e-2f, -1.0f, layout.chunks[k].count, chunk->master,
                  static_cast<const float*>(chunk->grad), chunk->m, chunk->v);
      store.Release(k);
    }
    if (zero_early) store.ZeroGrads();
    REQUIRE(store.Finish().ok());
    after_pass();
  }
  return ReadAll(store, {StateArray::kMaster, StateArray::kM, StateArray::kV, StateArray::kGrad});
}

TEST_CASE("NVMe state store reads ahead across steps and equals memory", "[state_store]") {
  StateLayout layout;
  for (size_t k = 0; k < 7; ++k) layout.chunks.push_back({k / 2, 0, 3 + k});
  layout.master_bytes = 4;
  layout.grad_bytes = 4;
  std::unique_ptr<Allocator> allocator = CreateHostAllocator();
  absl::StatusOr<std::unique_ptr<StateStore>> memory =
      CreateMemoryStateStore(layout, MemorySpace::kDevice, *allocator);
  REQUIRE(memory.ok());
  const std::vector<float> expected = Train(**memory, false);
  const std::vector<float> expected_zeroed = Train(**memory, true);
  // buffer_count counts one array of one chunk (4 arrays here): rings of 3 (DeepSpeed's default
  // 4, at least 3), 4, 6 and every chunk (capped at 7).
  for (auto [buffer_count, ring] : {std::pair<size_t, size_t>{4, 3}, {16, 4}, {24, 6}, {1000, 7}}) {
    INFO("buffer_count " << buffer_count);
    AioOptions aio;
    aio.block_size = 4096;
    testing::TempDir dir;
    absl::StatusOr<std::unique_ptr<NvmeStateStore>> nvme =
        NvmeStateStore::Create(dir.path(), layout, aio, buffer_count);
    REQUIRE(nvme.ok());
    CHECK((*nvme)->ring() == ring);
    CHECK((*nvme)->buffer_bytes() == (4 * ring + 1) * 4096);  // And one array's bounce.
    // Between steps the next step's first ring - 1 chunks are read ahead (waited for here, so
    // the bytes below are exact).
    const std::vector<float> got = Train(**nvme, false, [&] { (*nvme)->AwaitReads(); });
    REQUIRE(got.size() == expected.size());
    CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
    // Pages written: masters, m and v first (21) and one chunk's masters again; per step 14
    // accumulator writes and 21 pages of write-back, but the accumulators of the chunks read
    // ahead (steps 2 and 3) stay in their buffers and go back once with the chunk (4 pages
    // instead of 2 + 3).
    const uint64_t pages = 22 + 3 * 35 - 2 * (ring - 1);
    CHECK((*nvme)->stats().bytes_written == pages * 4096);
    // Zeroed before Finish, accumulators still in their buffers are not written back.
    testing::TempDir dir2;
    nvme = NvmeStateStore::Create(dir2.path(), layout, aio, buffer_count);
    REQUIRE(nvme.ok());
    const std::vector<float> zeroed = Train(**nvme, true, [&] { (*nvme)->AwaitReads(); });
    REQUIRE(zeroed.size() == expected_zeroed.size());
    CHECK(std::memcmp(zeroed.data(), expected_zeroed.data(), zeroed.size() * sizeof(float)) == 0);
    CHECK((*nvme)->stats().bytes_written <= pages * 4096);
  }
  CHECK(expected[0] != Value(0, 0, 0));
}

TEST_CASE("Memory state store: contiguous arrays, the allocator's accounting", "[state_store]") {
  std::unique_ptr<Allocator> allocator = CreateHostAllocator();
  {
    absl::StatusOr<std::unique_ptr<StateStore>> store =
        CreateMemoryStateStore(TestLayout(2), MemorySpace::kHost, *allocator);
    REQUIRE(store.ok());
    const StateLayout& layout = (*store)->layout();
    CHECK(layout.elements() == 22);
    // masters, m, v in fp32 and a bf16 accumulator: the formula 12 + 2 bytes a parameter.
    CHECK(allocator->in_use() == 22 * (4 + 4 + 4 + 2));
    CHECK(allocator->high_water() == allocator->in_use());
    for (StateArray a : {StateArray::kMaster, StateArray::kM, StateArray::kGrad}) {
      char* first = static_cast<char*>((*store)->Data(0, a));
      REQUIRE(first != nullptr);
      CHECK(static_cast<char*>((*store)->Data(2, a)) == first + 17 * layout.element_bytes(a));
    }
    CHECK((*store)->offset(2) == 17);
  }
  CHECK(allocator->in_use() == 0);
  CHECK(allocator->high_water() == 22 * 14);
}

TEST_CASE("A store's accumulator reads as zeros after ZeroGrads until written", "[state_store]") {
  testing::TempDir dir;
  AioOptions aio;
  aio.block_size = 4096;
  std::unique_ptr<Allocator> allocator = CreateHostAllocator();
  std::vector<std::unique_ptr<StateStore>> stores;
  stores.push_back(*CreateMemoryStateStore(TestLayout(2), MemorySpace::kDevice, *allocator));
  stores.push_back(*NvmeStateStore::Create(dir.path(), TestLayout(2), aio));
  for (auto& store : stores) {
    INFO(MemorySpaceName(store->space()));
    const std::vector<uint16_t> ones(10, 0x3f80);  // bf16 1.0
    REQUIRE(store->Write(0, StateArray::kGrad, ones.data()).ok());
    std::vector<uint16_t> out(10, 7);
    REQUIRE(store->Read(0, StateArray::kGrad, out.data()).ok());
    CHECK(out == ones);
    store->ZeroGrads();
    REQUIRE(store->Read(0, StateArray::kGrad, out.data()).ok());
    CHECK(out == std::vector<uint16_t>(10, 0));
    // The pass hands out zeros for the unwritten accumulator, written values for the rest.
    REQUIRE(store->Write(1, StateArray::kGrad, ones.data()).ok());
    REQUIRE(store->Begin().ok());
    for (size_t k = 0; k < store->chunks(); ++k) {
      absl::StatusOr<StateStore::Chunk> chunk = store->Acquire(k);
      REQUIRE(chunk.ok());
      const uint16_t* g = static_cast<const uint16_t*>(chunk->grad);
      CHECK(g[0] == (k == 1 ? 0x3f80 : 0));
      store->Release(k);
    }
    REQUIRE(store->Finish().ok());
  }
}

TEST_CASE("A store without masters refuses to read them", "[state_store]") {
  StateLayout layout = TestLayout(0);
  layout.master_bytes = 0;  // fp32 weights: the working weights are the masters.
  std::unique_ptr<Allocator> allocator = CreateHostAllocator();
  absl::StatusOr<std::unique_ptr<StateStore>> store =
      CreateMemoryStateStore(layout, MemorySpace::kDevice, *allocator);
  REQUIRE(store.ok());
  CHECK(allocator->in_use() == 22 * 8);
  CHECK((*store)->Data(0, StateArray::kMaster) == nullptr);
  float out[10];
  CHECK((*store)->Read(0, StateArray::kMaster, out).code() == absl::StatusCode::kInternal);
  absl::StatusOr<StateStore::Chunk> chunk = (*store)->Acquire(1);
  REQUIRE(chunk.ok());
  CHECK(chunk->master == nullptr);
  CHECK(chunk->grad == nullptr);
}

}  // namespace
}  // namespace zerorun
