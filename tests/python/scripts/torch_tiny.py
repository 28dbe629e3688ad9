"""A tiny torch model trained by zerorun.torch (tests/python/test_torch_engine.py), and the same
model trained by plain torch as the single-process reference.

The model: a tied embedding / output head and a final LayerNorm ("rest"), three repeated blocks
(LayerNorm, Linear, GELU, Linear, residual), and a frozen projection (requires_grad False).
The data: a fixed global batch of 12 token sequences; rank r of W at micro-step m takes its
equal slice, so the mean of the slices' mean losses is the global batch's mean loss.

    python torch_tiny.py engine OUT STEPS [CONFIG]  # under zerorun (or alone): rank 0 saves
    python torch_tiny.py reference OUT STEPS CONFIG_JSON   # plain torch, one process
"""
import json
import sys

import torch

VOCAB, DIM, SEQ, BATCH = 32, 16, 8, 12


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(DIM)
        self.up = torch.nn.Linear(DIM, 2 * DIM)
        self.down = torch.nn.Linear(2 * DIM, DIM)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, DIM)
        self.frozen = torch.nn.Linear(DIM, DIM, bias=False)
        self.frozen.weight.requires_grad_(False)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(3))
        self.norm = torch.nn.LayerNorm(DIM)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        x = x + self.frozen(x)
        for block in self.blocks:
            x = block(x)
        logits = self.norm(x) @ self.embed.weight.t()  # The head is tied to the embedding.
        return torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def data():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=g)
    return tokens[:, :-1], tokens[:, 1:]


def model():
    torch.manual_seed(0)
    return Tiny()


def engine_run(out, steps, config=None):
    import zerorun.torch

    engine, _, _, _ = zerorun.torch.initialize(model=model(), config=config)
    ga = engine.gradient_accumulation_steps
    micro = BATCH // (engine.world_size * ga)
    x, y = data()
    norms = []
    for _ in range(steps):
        for m in range(ga):
            at = (m * engine.world_size + engine.global_rank) * micro
            loss = engine(x[at:at + micro], y[at:at + micro])
            engine.backward(loss)
            engine.step()
        norms.append(engine.get_global_grad_norm())
    full = dict(engine.named_full_tensors())
    if engine.global_rank == 0:
        torch.save({"params": full, "norms": norms, "memory": engine.memory()}, out)


def reference_run(out, steps, config):
    net = model()
    opt_params = config["optimizer"]["params"]
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=opt_params["lr"], betas=tuple(opt_params["betas"]),
                            eps=opt_params["eps"], weight_decay=opt_params["weight_decay"])
    x, y = data()
    norms = []
    for _ in range(steps):
        opt.zero_grad()
        net(x, y).backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainable,
                                                           config["gradient_clipping"])))
        opt.step()
    params = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    torch.save({"params": params, "norms": norms}, out)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]  # DeepSpeed's flag.
    if args[0] == "engine":
        engine_run(args[1], int(args[2]), args[3] if len(args) > 3 else None)
    else:
        reference_run(args[1], int(args[2]), json.loads(args[3]))
