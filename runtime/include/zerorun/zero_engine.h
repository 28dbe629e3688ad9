// The ZeRO engine (CPU ranks): parameters, gradients and AdamW state laid out by partition.h,
// gradients averaged over ranks and micro-steps, clipped by the global norm, the optimizer run
// on each rank's shard of fp32 master weights. Bytes per rank for P parameters over N ranks,
// mixed precision (bf16/fp16 working weights) | fp32:
//   stage 0: full grads, all-reduce, replicated AdamW       16P           | 16P
//   stage 1: full grads, reduce-scatter, sharded AdamW      4P + 12P/N    | 8P + 8P/N
//   stage 2: grads reduce-scattered per unit into a shard   2P + 14P/N    | 4P + 12P/N
//   stage 3: parameters sharded too, gathered on Acquire    16P/N + slots | 16P/N + slots
#ifndef ZERORUN_RUNTIME_INCLUDE_ZERORUN_ZERO_ENGINE_H_
#define ZERORUN_RUNTIME_INCLUDE_ZERORUN_ZERO_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "zerorun/adamw.h"
#include "zerorun/comm.h"
#include "zerorun/device.h"
#include "zerorun/dtype.h"
#include "zerorun/kernels.h"
#include "zerorun/loss_scaler.h"
#include "zerorun/optimizer.h"
#include "zerorun/partition.h"
#include "zerorun/state_store.h"
#include "zerorun/step_times.h"

namespace zerorun {

class CommQueue;       // runtime/zero/comm_queue.h
class GradStore;       // runtime/zero/grad_store.h
class NvmeStateStore;  // runtime/offload/nvme_state_store.h
class ParamStore;      // runtime/zero/param_store.h
class SwapDir;         // runtime/offload/swap_dir.h

// DeepSpeed's "aio" block (its defaults): requests of block_size bytes, queue_depth in flight.
// single_submit, overlap_events and thread_count are taken for compatibility (one io_uring).
struct AioConfig {
  size_t block_size = 1 << 20;
  int queue_depth = 8;
  bool single_submit = false;
  bool overlap_events = true;
  int thread_count = 1;
};

struct ZeroOptions {
  int stage = 2;                 // 0-3.
  DType dtype = DType::kFp32;    // Working dtype; master weights, m and v are always fp32.
  bool grad_accum_fp32 = false;  // 16-bit: accumulate gradients in fp32 (data_types.grad_accum_
                                 // dtype "fp32"); default: the working dtype, as DeepSpeed.
  AdamWHyper adam;
  float gradient_clipping = 0;  // Max global norm; 0 disables (DeepSpeed's default is 1.0).
  int gradient_accumulation_steps = 1;
  LossScaleOptions loss_scale;  // fp16 only.
  size_t align = 16;            // Elements; tensor starts and shard sizes are multiples of it.
  size_t grad_slots = 2;        // Unit-sized fp32 gradient buffers in flight (stages 2-3, 16-bit).
  // Reduce (stages 2-3) and gather (stage 3) on a communication thread while the caller
  // computes; off: every collective runs inside the call that needs it.
  bool overlap_comm = false;
  // 16-bit working weights: also hand out their fp32 widening (UnitGuard::tensor) for a model
  // that computes in fp32, like the example GPT. Off for a model that binds the 16-bit weights
  // themselves (UnitGuard::weights): no widening work and no fp32 view buffers.
  bool widen = true;
  // Stage 3 (DeepSpeed's keys; counts are elements).
  size_t prefetch_bucket_size = 50'000'000;      // Elements gathered ahead of use; 0: no prefetch.
  size_t param_persistence_threshold = 100'000;  // Units this small stay gathered.
  size_t max_live_parameters = 1'000'000'000;    // Gathered elements kept (soft limit).
  size_t max_reuse_distance = 1'000'000'000;     // Keep a released unit reused within this.
  // ZeRO-Offload (offload_optimizer.device / ratio / pin_memory, offload_param.device): where
  // the optimizer state (fp32 masters with a 16-bit dtype, Adam m and v) and, at stage 3, the
  // parameter shards live. Offload needs stage >= 1 (parameters: stage 3); `optimizer_ratio` of
  // the optimizer state is offloaded to kHost, the rest stays on the device.
  MemorySpace optimizer_space = MemorySpace::kDevice;
  double optimizer_ratio = 1.0;
  bool pin_memory = false;
  MemorySpace param_space = MemorySpace::kDevice;
  // ZeRO-Infinity. kNvme optimizer state: the masters (16-bit working weights; with fp32 ones the
  // masters are the weights), Adam's m and v and at stages 2-3 the gradient accumulator in a file
  // under <nvme_path>/zerorun-<swap_tag>/
  // (a per job and rank name; the directory goes with the engine), swapped in chunks of at most
  // sub_group_size elements during the step. kNvme parameters (stage 3): the shard of every unit
  // not kept gathered in a file under <param_nvme_path>/zerorun-<swap_tag>/, read when the unit
  // is gathered, written after the step; at most param_buffer_count units and max_in_cpu
  // elements read ahead, no unit's shard above param_buffer_size elements (DeepSpeed's keys).
  std::string nvme_path;
  std::string param_nvme_path;
  std::string swap_tag = "engine";
  AioConfig aio;
  size_t sub_group_size = 1'000'000'000;
  // kNvme optimizer state: buffers of one array of one sub-group (DeepSpeed's
  // offload_optimizer.buffer_count); the ring reads max(3, this / arrays) chunks ahead, on into
  // the next step's forward and backward passes.
  size_t optimizer_buffer_count = 4;
  size_t param_buffer_count = 5;
  size_t param_buffer_size = 100'000'000;
  size_t max_in_cpu = 1'000'000'000;
};

struct StepResult {
  float grad_norm = 0;   // Global norm of the averaged, unscaled gradient, before clipping.
  float clip_coef = 1;   // What the gradient was multiplied by (after unscaling).
  bool skipped = false;  // A non-finite gradient: no update (fp16: the loss scale dropped).
  float loss_scale = 1;  // The scale for the next step's backward.
  float mean_value = 0;  // Step()'s `value` averaged over the ranks.
};

// Bytes this rank holds for model states (the ZeRO paper's accounting, padding included).
struct MemoryReport {
  size_t params = 0;     // Working parameters: full (stages 0-2, persistent units) or the shard.
  size_t master = 0;     // fp32 master weights when the working dtype is 16-bit.
  size_t grads = 0;      // Full gradient buffers (stages 0/1) or the shard accumulator (2/3).
  size_t optimizer = 0;  // Adam m and v.
  size_t scratch = 0;    // Gradient slots.
  size_t live = 0;       // Gathered / widened parameter slots now allocated.
  // All of the above by where it lives (ZeroOptions' memory spaces; on a CPU rank "device" and
  // "host" are the same RAM, the split says what a GPU rank would hold where).
  size_t device = 0, host = 0, nvme = 0;
  // What the engine's allocators hold now (everything above that is in memory: total() - nvme)
  // and the most they held at once since Create (the sum of their high-water marks).
  size_t allocated = 0, peak = 0;
  size_t model_states() const { return params + master + grads + optimizer; }
  size_t total() const { return model_states() + scratch + live; }
};

// ZeRO-Infinity: this rank's swap files (optimizer state, parameter shards) and their traffic.
struct SwapReport {
  uint64_t file_bytes = 0;
  uint64_t bytes_read = 0, bytes_written = 0;
  double read_seconds = 0, write_seconds = 0;  // Inside the transfers (submit to completion).
  uint64_t buffer_bytes = 0;  // Host memory of the optimizer store's ring and bounce buffer.
};

struct GatherStats {
  int64_t gathers = 0;     // Units all-gathered (stage 3).
  int64_t prefetched = 0;  // Of which issued ahead of their Acquire.
  int64_t prefetch_misses = 0;
  bool order_consistent = true;  // The first step's acquire order matched on all ranks.
};

class ZeroEngine;

// Scoped access to one unit's full parameters for a forward or backward pass. Stage 3 gathers
// the unit (or finds it prefetched). When the last guard of a unit ends, the unit is released
// (stage 3 keeps it when it is reused soon). Guards nest and may be taken twice for one unit
// (tied weights). Movable only; used on the engine's thread. Every view is valid while the
// guard lives and read-only by contract: a write may or may not reach the weights (use
// ZeroEngine::SetTensor).
class UnitGuard {
 public:
  UnitGuard(UnitGuard&& other) noexcept;
  UnitGuard& operator=(UnitGuard&&) = delete;
  UnitGuard(const UnitGuard&) = delete;
  ~UnitGuard();

  size_t unit() const { return unit_; }
  // The working weights in the working dtype (fp32, bf16 or fp16; the view's dtype says): the
  // unit's flat buffer (layout padded elements), or tensor `index` (numel elements at its
  // layout offset). What a bf16 or fp16 model binds to.
  BufferView weights() const { return working_; }
  BufferView weights(size_t index) const;
  // The fp32 widening of the working weights, tensor by tensor in registration order (the same
  // memory as weights() in fp32), for a model that computes in fp32 like the example GPT;
  // nullptr for 16-bit weights with ZeroOptions::widen off.
  float* tensor(size_t index) const;
  std::vector<float*> tensors() const;

 private:
  friend class ZeroEngine;
  UnitGuard(ZeroEngine* engine, size_t unit, float* base, BufferView working)
      : engine_(engine), unit_(unit), base_(base), working_(working) {}
  ZeroEngine* engine_;
  size_t unit_;
  float* base_;
  BufferView working_;
};

enum class Pass { kForward, kBackward };

// Fills elements [begin, end) of tensor `tensor` of unit `unit` (flat, row-major) into out.
using InitFn =
    std::function<void(size_t unit, size_t tensor, size_t begin, size_t end, float* out)>;

class ZeroEngine {
 public:
  // InvalidArgument for a stage outside 0-3, gradient_accumulation_steps < 1, no gradient slot,
  // or a bad layout. `comm` must outlive the engine; every rank passes the same units/options.
  // With overlap_comm the engine owns `comm` (its communication thread may be using it at any
  // time, stage 1-2 parameter gathers even after Step() returns): the caller issues a collective
  // of its own only after Sync(). Step() averages a scalar of the caller's (the loss) for free.
  static absl::StatusOr<std::unique_ptr<ZeroEngine>> Create(const std::vector<UnitSpec>& units,
                                                            const ZeroOptions& options,
                                                            Communicator* comm);
  ~ZeroEngine();

  const Layout& layout() const { return layout_; }
  const ZeroOptions& options() const { return options_; }

  // Initialises every tensor by calling `fn` for the elements this rank holds (stage 3: only its
  // shard, so no rank ever materialises the full model). Local, no communication; fails only
  // when state on NVMe cannot be written.
  absl::Status Init(const InitFn& fn);
  // Sets tensor `tensor` of `unit` from its full values (numel floats). Local; as Init.
  absl::Status SetTensor(size_t unit, size_t tensor, const float* values);
  // Sets Adam's m and v of tensor `tensor` of `unit` from their full values (numel floats each):
  // the part this rank owns. Local, like SetTensor; with it and FinishRestore, another trainer's
  // optimizer state comes in (zerorun.torch's DeepSpeed checkpoint import).
  absl::Status SetTensorAdam(size_t unit, size_t tensor, const float* m, const float* v);
  // The full fp32 master values of a tensor. A collective in stages 1-3 (and always with
  // 16-bit weights): every rank calls it with the same arguments.
  absl::Status GetTensor(size_t unit, size_t tensor, float* out);

  // Acquires `unit` for `pass` (see UnitGuard); every rank acquires the same units in the same
  // order (stage 3 gathers are collectives). InvalidArgument for an unknown unit. The first
  // step's order is recorded, checked across ranks at its Step(), and prefetched along later.
  absl::StatusOr<UnitGuard> Acquire(size_t unit, Pass pass);
  const std::vector<std::pair<size_t, Pass>>& acquire_order() const;
  int live_guards(size_t unit) const;
  // Stage 3: keep `unit` gathered from its forward release until its backward release.
  void KeepForBackward(size_t unit, bool keep);

  // The fp32 buffer the backward pass adds `unit`'s gradients into (+=; same offsets as the
  // unit's parameters). fp32 stages 0/1: persistent, accumulating over micro-steps. Otherwise a
  // zeroed slot from a pool; waits for one while reductions are in flight; ResourceExhausted
  // when every slot is held by a unit not yet marked ready.
  absl::StatusOr<float*> Grads(size_t unit);
  // The same buffer in the working dtype, for a model whose gradients are bf16 or fp16 (fp32:
  // Grads()' buffer as a view): zeroed, the unit's padded elements at its layout offsets; a 16-bit
  // buffer enters the reduction (and, at stages 0-1, the working-dtype accumulation) as written,
  // without the rounding Grads()' fp32 values get. One of Grads() and WorkingGrads() per unit per
  // micro-step (FailedPrecondition for both); errors as Grads(). Valid until GradsReady(unit).
  absl::StatusOr<BufferView> WorkingGrads(size_t unit);
  // Declares `unit`'s gradients of this micro-step complete; stages 2-3 reduce-scatter them into
  // the shard accumulator (on the communication thread with overlap_comm). A unit may be taken
  // and marked ready more than once per micro-step (tied weights): the parts add up.
  absl::Status GradsReady(size_t unit);

  // The factor the loss is multiplied by before backward (fp16 loss scaling; else 1).
  float loss_scale() const { return scaler_.scale(); }
  const LossScaler& scaler() const { return scaler_; }
  // The step number of the last optimizer step that updated the weights (0 before any); skipped
  // (overflow) steps do not count.
  int64_t last_step() const { return last_step_; }

  // Checkpoint access; call after Sync(). Once a checkpoint load wrote any state, the engine must
  // not be used for anything but more writes until FinishRestore.
  // The elements of `unit`'s flat buffer this rank owns: [begin, begin + n).
  size_t owned_begin(size_t unit) const { return OwnedBegin(unit); }
  size_t owned_count(size_t unit) const { return Owned(unit); }
  // This rank's optimizer state, chunk by chunk (StateStore): Adam's m and v and, with 16-bit
  // weights, the masters. Lives as long as the engine.
  StateStore& state_store() { return *state_; }
  const StateStore& state_store() const { return *state_; }
  // A unit's owned fp32 masters (owned_count floats) wherever they live: the working weights
  // themselves with fp32 weights (in memory, or the stage-3 parameter swap), else the state
  // store. MasterData: writable in place, or nullptr where they are on NVMe; then ReadMasters /
  // WriteMasters copy them. WriteMasters also rewrites the unit's owned working weights (16-bit:
  // rounded to nearest even).
  float* MasterData(size_t unit);
  absl::Status ReadMasters(size_t unit, float* out);
  absl::Status WriteMasters(size_t unit, const float* in);
  // Some of the shard is on NVMe (a checkpoint streams it instead of snapshotting it).
  bool state_on_nvme() const;
  // Rebuilds the working weights from the masters (round to nearest even for 16-bit) and shares
  // them (stages 1-3's resident units: an all-gather each; a collective). Call once every unit's
  // masters are written; m and v may still be arriving: it touches neither, so it may run on a
  // thread of its own while the caller writes them, as long as nothing else uses `comm` or the
  // engine's weights meanwhile (a checkpoint load overlaps the two).
  absl::Status RestoreWeights();
  // Ends a restore (masters, m and v written, the accumulated gradients dropped): sets the step and
  // the loss scaler and, unless `weights_restored`, calls RestoreWeights().
  absl::Status FinishRestore(int64_t last_step, const LossScaler& scaler,
                             bool weights_restored = false);

  // Ends the optimizer step: averages the gradients over ranks and micro-steps, unscales, takes
  // the global norm, skips the update when it is not finite (fp16: lowers the loss scale),
  // clips, runs AdamW at step number `step` (1-based) with `lr` on this rank's fp32 master
  // shard, writes the working weights back (round to nearest even), shares them (stages 1-2;
  // with overlap_comm the gathers run on while the caller goes on, and Acquire waits for its
  // unit's) and zeroes the gradients. `value` (e.g. this rank's loss) comes back averaged over
  // the ranks in StepResult::mean_value, riding on the norm's all-reduce. FailedPrecondition
  // when a unit's gradients were never marked ready or a guard is still alive.
  absl::StatusOr<StepResult> Step(int64_t step, float lr, float value = 0);

  // Waits for every collective the engine has in flight; then the caller may use `comm`.
  absl::Status Sync();

  // Where the last step's wall time went (StepTimes), measured on the thread that created the
  // engine: from the previous Step() return (the first: from Create) to this one's. Zeros before
  // the first Step().
  const StepTimes& step_times() const { return step_times_; }
  // The clock behind step_times(): a caller charges its own I/O (data loading) with
  // PhaseClock::Scope(&engine.clock(), Phase::kIo); checkpoints do so themselves.
  PhaseClock& clock() { return phase_clock_; }

  // What the engine noticed since the last call and the caller may want to show (the library
  // never prints): e.g. "rank 1: acquire #7 (unit h.2) differs from the first step's order;
  // prefetching is off from here, ...". Engine thread.
  std::vector<std::string> TakeNotices();

  MemoryReport Memory() const;
  SwapReport Swap() const;  // Zeros without state on NVMe. Call after Sync().
  GatherStats gather_stats() const;

 private:
  friend class UnitGuard;
  ZeroEngine(Layout layout, const ZeroOptions& options, Communicator* comm);
  size_t units() const { return layout_.units().size(); }
  void Release(size_t unit);
  // g32 == nullptr: the 16-bit gradients are in g16 already (WorkingGrads).
  absl::Status ReduceUnitGrads(size_t unit, float* g32, uint16_t* g16);
  // Step helpers (zero_engine.cc).
  absl::StatusOr<StepResult> StepPhases(int64_t step, float lr, float value);
  // The unit's owned gradients as fp32 (in place, *direct, or widened into tmp); not for an
  // accumulator on NVMe, which the step reads with its chunk.
  absl::StatusOr<float*> OwnedGrads(size_t unit, std::vector<float>& tmp, bool* direct);
  // Adds a reduced gradient shard (the unit's owned elements) into the accumulator.
  absl::Status AccumulateGrads(size_t unit, const float* reduced);
  // A view of `count` accumulator elements at `grad` (fp32 or the working dtype).
  BufferView GradView(const void* grad, size_t count) const;
  // The factor on accumulated gradients before the norm: 1 / (accumulation steps x loss scale).
  float GradPre() const;
  // The optimizer pass over the state store: AdamW chunk by chunk, new working weights, the
  // gradients zeroed (ZeroGrads) before the store's write-back ends.
  absl::Status StepOptimizer(int64_t step, float lr, float pre, float clip_coef,
                             std::vector<float>& tmp);
  // The unit's first chunk's array in memory (the unit's whole run there), or nullptr.
  void* StateData(size_t unit, StateArray a);
  bool MastersAway(size_t unit) const;  // On NVMe: MasterData() is nullptr.
  // The accumulator's element (stages 2-3): 4 or 2; else 0. It lives in the state store, so on
  // NVMe with the optimizer state, as DeepSpeed swaps its gradients (measured: keeping it in
  // memory saves ~5% of the step for 2-4 bytes a parameter of RAM).
  size_t grad_bytes() const { return state_->layout().grad_bytes; }
  bool grads_on_nvme() const { return nvme_state_ != nullptr && grad_bytes() > 0; }
  // The unit's owned working weights in the 16-bit working dtype (resident or sharded).
  uint16_t* OwnedWorking16(size_t unit) const;
  absl::Status CreateStores();
  // The optimizer over owned elements [at, at + len) of `unit` (the arrays start at `at`), in
  // runs of one weight decay (TensorSpec::weight_decay; padding takes the tensor before it's).
  void StepOwned(size_t unit, int64_t step, float lr, size_t at, size_t len, float* master,
                 const float* grad, float* m, float* v);
  // Calls fn(k, at, len) for each state-store chunk k of `unit`'s owned elements in order
  // (it holds elements [at, at + len)); stops at and returns the first error.
  absl::Status ForEachChunk(size_t unit,
                            const std::function<absl::Status(size_t k, size_t at, size_t len)>& fn);
  void ZeroGrads();
  size_t Owned(size_t unit) const;       // Elements of the unit this rank's state holds.
  size_t OwnedBegin(size_t unit) const;  // Their start in the unit's flat buffer.
  // [lo, hi) of the unit's flat buffer where tensor `tensor` meets what this rank owns.
  std::pair<size_t, size_t> OwnedPart(size_t unit, size_t tensor) const;
  bool sixteen() const { return options_.dtype != DType::kFp32; }

  Layout layout_;
  const ZeroOptions options_;
  Communicator* comm_;
  PhaseClock phase_clock_;  // Before comm_queue_, whose waits are charged to it.
  StepTimes step_times_;
  // Collectives and the NVMe reads feeding them, in issue order; async with overlap_comm. Its
  // tasks use the stores below: the engine's destructor waits for them first.
  std::unique_ptr<CommQueue> comm_queue_;
  // ZeRO-Infinity's swap directories (before the files in them, which go first).
  std::vector<std::unique_ptr<SwapDir>> swap_dirs_;
  // The stores: working weights and views, gradients, the optimizer state; per unit its first
  // state chunk and chunk count; the state store when it is on NVMe (its traffic for Swap()).
  std::unique_ptr<Allocator> allocator_;        // Host memory of every buffer below (first).
  std::unique_ptr<Allocator> state_allocator_;  // Pinned host memory of the offloaded state.
  std::unique_ptr<ParamStore> params_;
  std::unique_ptr<GradStore> grads_;
  std::unique_ptr<StateStore> state_;
  NvmeStateStore* nvme_state_ = nullptr;
  std::vector<std::pair<size_t, size_t>> unit_chunks_;
  // Per unit, where the weight decay changes in its flat buffer: (first element, decay), sorted;
  // one entry (0, -1) when every tensor takes the optimizer's.
  std::vector<std::vector<std::pair<size_t, float>>> decay_runs_;
  std::unique_ptr<Optimizer> optimizer_;
  // The element-wise work on the buffers above (scaling, the squared norm, casts, accumulation):
  // the CPU kernels while the stores are in host memory. Stateless: both threads call it. The
  // norm is summed per chunk (SumSquares) in chunk order on every path, so its bits do not
  // depend on where the accumulator lives.
  std::unique_ptr<Kernels> kernels_;
  Buffer grad_io_;                 // Communication thread: a chunk of the swapped accumulator.
  std::vector<float> reduce_out_;  // Communication thread: one reduced shard.
  // Accumulator on NVMe: per chunk, the sum of squares of its scaled gradients, taken when the
  // communication thread writes the chunk (as DeepSpeed takes its norms at the partition), so
  // the step's norm reads nothing back. Step() reads it after Sync(); ZeroGrads() zeros it.
  std::vector<double> grad_squares_;
  Buffer step32_;  // Step: a unit's fp32 shard read from the parameter swap.
  Buffer step16_;  // Step: a unit's new 16-bit shard bound for it.
  int64_t last_step_ = 0;
  LossScaler scaler_;
};

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_INCLUDE_ZERORUN_ZERO_ENGINE_H_
