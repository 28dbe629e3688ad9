// `zerorun ckpt inspect DIR` and `zerorun ckpt verify DIR`: a checkpoint's manifest summary, and
// every shard's size and sha256 against it. DIR is a save directory (its `latest`) or a tag.
#ifndef ZERORUN_LAUNCHER_CLI_CKPT_CLI_H_
#define ZERORUN_LAUNCHER_CLI_CKPT_CLI_H_

#include <ostream>
#include <string>

namespace zerorun::launcher {

// Returns 0, 66 when there is no checkpoint there, 65 for a manifest that is not one.
int CkptInspectCommand(const std::string& dir, std::ostream& out, std::ostream& err);

// Returns 0 when every shard (and the frozen tensors' file, where there is one) matches, 65 naming
// the first corrupt or truncated file, 66 when a shard or the checkpoint is missing.
int CkptVerifyCommand(const std::string& dir, std::ostream& out, std::ostream& err);

// Writes the full fp32 master weights of the checkpoint at `dir` to `out` in the safetensors
// format (tensors named "<unit>.<tensor>", shapes as registered; metadata: tag, step, world size,
// stage), as F32 or, with dtype "bf16", BF16 rounded to nearest even. Written to a temporary name
// and renamed. Returns 0, 2 for another dtype, 65/66 as verify, 73 when `out` cannot be written.
int CkptConsolidateCommand(const std::string& dir, const std::string& out_path,
                           const std::string& dtype, std::ostream& out, std::ostream& err);

// Makes `out_dir`/`tag` a checkpoint that training resumes from (LoadCheckpoint imports it at
// any world size and stage), named by `latest`, with a manifest of kind "weights":
// - from a safetensors file (F32, BF16 or F16; tensors "<unit>.<tensor>"): a copy of it, initial
//   weights (Adam's state at zero, step 0);
// - from a DeepSpeed ZeRO-1/2/3 checkpoint directory (its save dir with `latest`, or a tag dir):
//   the fp32 masters, Adam's m and v, the step and the client state, converted by `python -m
//   zerorun.torch.deepspeed_ckpt` (torch's pickles need torch) into one safetensors file.
// Returns 0; 66 when the source is missing, 65 when it is not one of the above; 70 when `python`
// cannot run the converter; 73 when `out_dir` already has checkpoints (a latest) or the tag, or it
// cannot be written. Nothing is left behind on failure.
int CkptImportCommand(const std::string& source, const std::string& out_dir, const std::string& tag,
                      const std::string& python, std::ostream& out, std::ostream& err);

}  // namespace zerorun::launcher

#endif  // ZERORUN_LAUNCHER_CLI_CKPT_CLI_H_
