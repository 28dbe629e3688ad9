"""A plain torch model of 222M parameters (3.3 GiB of fp32 model states) built under
zerorun.torch.zero_init() and trained by zerorun.torch under zerorun (tests/e2e/
torch_memory_limit_e2e.sh runs it in a memory cgroup of a quarter of that):

    python torch_big.py STEPS

Prints "step K loss L" per step and, at the end, "model states MiB N" from the engine's report.
"""
import sys

import torch

import zerorun.torch

DIM, VOCAB, LAYERS, SEQ = 1024, 4096, 26, 16


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(DIM, 4 * DIM)
        self.down = torch.nn.Linear(4 * DIM, DIM)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(x)))


class Big(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, DIM)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        logits = x @ self.embed.weight.t() / DIM
        return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def main(steps):
    torch.manual_seed(0)
    with zerorun.torch.zero_init():
        model = Big()
    engine, _, _, _ = zerorun.torch.initialize(model=model)
    g = torch.Generator().manual_seed(1)
    for k in range(1, steps + 1):
        tokens = torch.randint(0, VOCAB, (1, SEQ + 1), generator=g)
        loss = engine(tokens[:, :-1], tokens[:, 1:])
        engine.backward(loss)
        engine.step()
        print(f"step {k} loss {float(loss):.4f}", flush=True)
    m = engine.memory()
    states = m["params"] + m["master"] + m["grads"] + m["optimizer"]
    print(f"model states MiB {states >> 20}", flush=True)


if __name__ == "__main__":
    main(int([a for a in sys.argv[1:] if not a.startswith("--local_rank")][0]))
