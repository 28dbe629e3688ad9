"""A script written for Accelerate with DeepSpeed, unchanged: Accelerator(deepspeed_plugin=
DeepSpeedPlugin(hf_ds_config=FILE)), prepare(), accelerator.backward(). A tiny next-token model
on integer tokens. Each rank writes --zr_out/rank<R>.json: losses by step (averaged over ranks),
the ZeRO stage and micro batch DeepSpeed ran with."""
import argparse
import json
import os

import torch
from accelerate import Accelerator, DeepSpeedPlugin
from accelerate.utils import set_seed

VOCAB, SEQ, HIDDEN = 64, 8, 32


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zr_out", required=True)
    parser.add_argument("--ds_config", required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--local_rank", type=int)  # DeepSpeed's launchers (and zerorun) pass it.
    args = parser.parse_args()
    accelerator = Accelerator(deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=args.ds_config))
    set_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(VOCAB, HIDDEN), torch.nn.Linear(HIDDEN, HIDDEN),
                                torch.nn.GELU(), torch.nn.Linear(HIDDEN, VOCAB))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tokens = torch.randint(0, VOCAB, (256, SEQ + 1), generator=torch.Generator().manual_seed(7))
    data = torch.utils.data.DataLoader(tokens, batch_size=4)
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    losses = {}
    for step, batch in enumerate(data, start=1):
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB),
                                                 batch[:, 1:].reshape(-1))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses[step] = accelerator.reduce(loss.detach(), reduction="mean").item()
        if step == args.steps:
            break
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    os.makedirs(args.zr_out, exist_ok=True)
    with open(os.path.join(args.zr_out, f"rank{accelerator.process_index}.json"), "w") as f:
        json.dump({"rank": accelerator.process_index, "losses": losses,
                   "world": accelerator.num_processes,
                   "stage": config["zero_optimization"]["stage"],
                   "micro_batch": config["train_micro_batch_size_per_gpu"]}, f)


if __name__ == "__main__":
    main()
