"""A real HF Trainer run on a tiny GPT-2 built from a config (no download) and integer tokens.

Arguments are HF's own TrainingArguments (so --deepspeed ds.json, --per_device_train_batch_size,
--bf16, ... work as in any HF script) plus this script's:
  --zr_out DIR      each rank writes DIR/rank<R>.json: the loss HF logged at every step, the
                    step reached, the rank's environment and argv, and the DeepSpeed config the
                    Trainer used (after its "auto" filling)
  --zr_sleep S      sleep S seconds after every step (a run long enough to be stopped)
  --zr_callback     add zerorun.hf.ZerorunCallback explicitly (else only ZERORUN_AUTO_CALLBACKS)
  --zr_model M      gpt2 (default) or llama: a tiny LlamaForCausalLM of the same size
  --zr_pretrained D from_pretrained(D) (under ZeRO-3 into zero.Init's shards) instead of
                    from_config; rank 0 first writes D from seed 0 when it does not exist
"""
import os

START_ENV = dict(os.environ)  # Before torch, accelerate or DeepSpeed change anything.

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, HfArgumentParser,
                          LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback,
                          TrainingArguments, set_seed)

VOCAB, SEQ, HIDDEN = 96, 16, 32


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n):
        self.x = torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(1234))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


class Record(TrainerCallback):
    def __init__(self, sleep):
        self.sleep = sleep
        self.losses = {}
        self.grad_norms = {}
        self.train_loss = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses[state.global_step] = logs["loss"]
        if logs and "grad_norm" in logs:
            self.grad_norms[state.global_step] = logs["grad_norm"]
        if logs and "train_loss" in logs:
            self.train_loss = logs["train_loss"]

    def on_step_end(self, args, state, control, **kwargs):
        if self.sleep:
            time.sleep(self.sleep)


def main():
    own = argparse.ArgumentParser()
    own.add_argument("--zr_out", required=True)
    own.add_argument("--zr_sleep", type=float, default=0.0)
    own.add_argument("--zr_callback", action="store_true")
    own.add_argument("--zr_model", default="gpt2", choices=["gpt2", "llama"])
    own.add_argument("--zr_pretrained")
    own.add_argument("--zr_eval_only", action="store_true",
                     help="no training: trainer.evaluate() (ZeRO-3 inference) of 12 samples")
    mine, rest = own.parse_known_args()
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(args=rest)
    # As HF's example scripts do (they log it): sets up torch.distributed before the model is
    # made, which ZeRO-3's zero.Init needs.
    print(f"rank {args.process_index}: device {args.device}, world size {args.world_size}")
    set_seed(args.seed)
    if mine.zr_model == "llama":
        config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=SEQ)
    else:
        config = GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=HIDDEN, n_layer=2, n_head=2,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    if mine.zr_pretrained:
        # Both engines start from the same weights: loaded into zero.Init's shards at ZeRO-3.
        if args.process_index == 0 and not os.path.isdir(mine.zr_pretrained):
            with torch.random.fork_rng():
                torch.manual_seed(0)  # The class itself: from_config would be under zero.Init.
                plain = (LlamaForCausalLM if mine.zr_model == "llama" else GPT2LMHeadModel)(config)
            plain.save_pretrained(mine.zr_pretrained + ".tmp")
            os.rename(mine.zr_pretrained + ".tmp", mine.zr_pretrained)
        while not os.path.isdir(mine.zr_pretrained):
            time.sleep(0.1)
        model = AutoModelForCausalLM.from_pretrained(mine.zr_pretrained)
    else:
        model = AutoModelForCausalLM.from_config(config)  # Under zero.Init with ZeRO-3.
    record = Record(mine.zr_sleep)
    callbacks = [record]
    if mine.zr_callback:
        from zerorun.hf import ZerorunCallback
        callbacks.append(ZerorunCallback())
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(256), callbacks=callbacks)
    metrics = {}
    if mine.zr_eval_only:
        metrics = trainer.evaluate(eval_dataset=Tokens(12))
    else:
        trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    plugin = trainer.accelerator.state.deepspeed_plugin
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(mine.zr_out, exist_ok=True)
    with open(os.path.join(mine.zr_out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "losses": record.losses, "grad_norms": record.grad_norms,
                   "step": trainer.state.global_step,
                   "max_steps": trainer.state.max_steps, "train_loss": record.train_loss,
                   "env": START_ENV, "eval_loss": metrics.get("eval_loss"),
                   # DeepSpeed's CPU all-reduce segments for this job, as the ranks leave them.
                   "shm": sorted(n for n in os.listdir("/dev/shm") if n.startswith(
                       "deepspeed_allreduce_buffer_") and
                       n.rsplit("_", 2)[-2] == os.environ.get("MASTER_PORT")),
                   "argv": sys.argv, "callbacks": [type(c).__name__ for c in
                                                   trainer.callback_handler.callbacks],
                   "ds_config": plugin.deepspeed_config if plugin else None}, f, default=str)


if __name__ == "__main__":
    main()
