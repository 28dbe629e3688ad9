// The bytes one rank's ZeRO-Infinity swap files hold (NvmeStateStore, ParamSwap), before block
// padding: the runtime's own layout, for pre-flight's free-space check (tested against the
// files actually written). Header-only so that the launcher needs no runtime library.
#ifndef ZERORUN_RUNTIME_OFFLOAD_SWAP_BYTES_H_
#define ZERORUN_RUNTIME_OFFLOAD_SWAP_BYTES_H_

namespace zerorun {

struct SwapLayoutFacts {
  int stage = 3;
  bool sixteen = false;          // bf16 / fp16 working weights (fp32 masters kept apart).
  bool grad_accum_fp32 = false;  // data_types.grad_accum_dtype "fp32" with 16-bit weights.
  bool optimizer_on_nvme = true;
  bool params_on_nvme = false;  // Stage 3 only.
};

// Per parameter of the rank's shard: Adam m and v (8), the masters with 16-bit weights (4), the
// gradient accumulator at stages 2-3 (4, or 2 when 16-bit), and the stage-3 working shard (2|4).
inline double SwapBytesPerShardElement(const SwapLayoutFacts& f) {
  double bytes = 0;
  if (f.optimizer_on_nvme) {
    bytes += 8 + (f.sixteen ? 4 : 0);
    if (f.stage >= 2) bytes += f.sixteen && !f.grad_accum_fp32 ? 2 : 4;
  }
  if (f.params_on_nvme && f.stage == 3) bytes += f.sixteen ? 2 : 4;
  return bytes;
}

}  // namespace zerorun

#endif  // ZERORUN_RUNTIME_OFFLOAD_SWAP_BYTES_H_
