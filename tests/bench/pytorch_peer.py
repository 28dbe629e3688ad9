#!/usr/bin/env python3
"""PyTorch peer for the GPT benchmark (label bench): the same model as train_gpt, trained with
DDP (Gloo) or DDP + ZeroRedundancyOptimizer on 2 CPU processes, 1 thread each. Prints ms/step,
global tokens/s and peak RSS per rank. Usage: pytorch_peer.py {ddp|zero1} STEPS (sizes: below)."""
import math
import os
import resource
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# The peer size by default; ZR_PEER_{D,LAYERS,SEQ,BATCH,WORLD} override it (memory benchmark).
VOCAB, HEADS = 4096, 4
D = int(os.environ.get("ZR_PEER_D", 256))
LAYERS = int(os.environ.get("ZR_PEER_LAYERS", 4))
SEQ = int(os.environ.get("ZR_PEER_SEQ", 128))
BATCH = int(os.environ.get("ZR_PEER_BATCH", 8))
WORLD = int(os.environ.get("ZR_PEER_WORLD", 2))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
        self.register_buffer("mask", torch.full((SEQ, SEQ), float("-inf")).triu(1), persistent=False)

    def forward(self, x):
        b, t, c = x.shape
        hd = c // HEADS
        q, k, v = (z.view(b, t, HEADS, hd).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(c, 2))
        att = ((q @ k.transpose(-2, -1)) / math.sqrt(hd) + self.mask[:t, :t]).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, c))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, D), nn.Embedding(SEQ, D)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, VOCAB, bias=False)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))[None]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def worker(rank, world, mode, steps, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.manual_seed(1234)
    model = nn.parallel.DistributedDataParallel(Gpt())
    if mode == "zero1":
        from torch.distributed.optim import ZeroRedundancyOptimizer
        opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=1e-3)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(rank)
    times = []
    for _ in range(steps):
        batch = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=gen)
        start = time.perf_counter()
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((rank, sorted(times[2:])[len(times[2:]) // 2], rss))
    dist.destroy_process_group()


def main():
    mode, steps = sys.argv[1], int(sys.argv[2])
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, WORLD, mode, steps, 29731, out))
             for r in range(WORLD)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    ms = max(r[1] for r in results) * 1000
    print(f"pytorch {mode}: {ms:.0f} ms/step, {WORLD * BATCH * SEQ / (ms / 1000):.0f} tokens/s, "
          f"peak RSS per rank {max(r[2] for r in results):.0f} MiB")


if __name__ == "__main__":
    main()
