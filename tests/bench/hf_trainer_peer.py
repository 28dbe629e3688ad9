"""One rank of the --engine benchmark (tests/bench/hf_engine_bench.sh): an unchanged HF Trainer
script with --deepspeed ds.json training a transformers GPT-2 (~23M parameters, seq 256, micro
batch 2, fp32, HF's AdamW and WarmupLR through the config's "auto" blocks, clipping 1.0) for
--max_steps steps; the engine is whichever `import deepspeed` gives (zerorun --engine).

    python hf_trainer_peer.py --zr_out DIR <TrainingArguments>

Each rank writes DIR/rank_<r>.json: the median seconds of the steps after 2 warm-up steps, the
samples per step of the whole job, and its peak RSS.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import transformers

SEQ, VOCAB = 256, 8192


class Tokens(torch.utils.data.Dataset):
    def __len__(self):
        return 100000

    def __getitem__(self, i):
        ids = torch.randint(0, VOCAB, (SEQ,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids}


class Clock(transformers.TrainerCallback):
    def __init__(self):
        self.times, self.start = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


def main():
    own = argparse.ArgumentParser()
    own.add_argument("--zr_out", required=True)
    mine, rest = own.parse_known_args()
    (args,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_args_into_dataclasses(
        args=rest)
    torch.set_num_threads(1)
    transformers.set_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=512, n_layer=6,
                                     n_head=8, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    clock = Clock()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Tokens(),
                                   callbacks=[clock])
    trainer.train()
    rank = args.process_index
    with open(os.path.join(mine.zr_out, f"rank_{rank}.json"), "w") as f:
        json.dump({"step_s": statistics.median(clock.times[2:]),
                   "samples": args.world_size * args.per_device_train_batch_size *
                   args.gradient_accumulation_steps,
                   "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, f)


if __name__ == "__main__":
    main()
