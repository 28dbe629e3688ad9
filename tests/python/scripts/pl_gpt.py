"""A real Lightning Trainer run: a tiny next-token model (embedding, MLP, head) on integer tokens,
on CPU with the strategy given (ddp: Lightning's DDP over gloo; deepspeed: Lightning's
DeepSpeedStrategy with a ds_config file). Arguments:
  --zr_out DIR        each rank writes DIR/rank<R>.json: losses by step, the step reached,
                      the callbacks the Trainer had
  --max_steps N --sleep S --strategy ddp|deepspeed --ds_config FILE --callback (add
  zerorun.lightning.ZerorunCallback explicitly; else only ZERORUN_AUTO_CALLBACKS)
  --save PATH (trainer.save_checkpoint after fit) --resume PATH (fit from that checkpoint)
"""
import argparse
import json
import os
import time

import torch
import lightning as L

VOCAB, SEQ, HIDDEN = 64, 8, 32


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n):
        self.x = torch.randint(0, VOCAB, (n, SEQ + 1), generator=torch.Generator().manual_seed(7))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


class TinyLM(L.LightningModule):
    def __init__(self, sleep):
        super().__init__()
        self.sleep = sleep
        self.net = torch.nn.Sequential(torch.nn.Embedding(VOCAB, HIDDEN),
                                       torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.GELU(),
                                       torch.nn.Linear(HIDDEN, VOCAB))
        self.losses = {}

    def training_step(self, batch, batch_idx):
        logits = self.net(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB),
                                                 batch[:, 1:].reshape(-1))
        self.losses[self.global_step + 1] = loss.item()
        if self.sleep:
            time.sleep(self.sleep)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zr_out", required=True)
    parser.add_argument("--max_steps", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--strategy", default="ddp")
    parser.add_argument("--ds_config")
    parser.add_argument("--callback", action="store_true")
    parser.add_argument("--save", help="trainer.save_checkpoint(SAVE) after fit")
    parser.add_argument("--resume", help="fit(ckpt_path=RESUME)")
    parser.add_argument("--local_rank", type=int)  # DeepSpeed's launchers (and zerorun) pass it.
    args = parser.parse_args()
    L.seed_everything(0, workers=True)
    model = TinyLM(args.sleep)
    callbacks = []
    if args.callback:
        from zerorun.lightning import ZerorunCallback
        callbacks.append(ZerorunCallback())
    strategy = args.strategy
    if strategy == "deepspeed" and args.ds_config:
        from lightning.pytorch.strategies import DeepSpeedStrategy
        strategy = DeepSpeedStrategy(config=args.ds_config)
    # Devices and nodes from the launcher's environment (WORLD_SIZE, LOCAL_WORLD_SIZE), the way
    # Lightning runs under torchrun.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    trainer = L.Trainer(accelerator="cpu", devices=local, num_nodes=world // local,
                        strategy=strategy, max_steps=args.max_steps, callbacks=callbacks,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1)
    data = torch.utils.data.DataLoader(Tokens(512), batch_size=4)
    trainer.fit(model, data, ckpt_path=args.resume)
    if args.save:
        trainer.save_checkpoint(args.save)
    rank = trainer.global_rank
    os.makedirs(args.zr_out, exist_ok=True)
    with open(os.path.join(args.zr_out, f"rank{rank}.json"), "w") as f:
        engine = getattr(trainer.strategy, "model", None)  # DeepSpeed's engine, or the module.
        stage = getattr(engine, "zero_optimization_stage", lambda: None)()
        json.dump({"rank": rank, "losses": model.losses, "step": trainer.global_step,
                   "zero_stage": stage,
                   "callbacks": [type(c).__name__ for c in trainer.callbacks]}, f)


if __name__ == "__main__":
    main()
