"""A tiny torch model trained by zerorun.torch (tests/python/test_torch_engine.py), and the same
model trained by plain torch as the single-process reference.

The model: a tied embedding / output head and a final LayerNorm ("rest"), three repeated blocks
(LayerNorm, Linear, GELU, Linear, residual), and a frozen projection (requires_grad False).
The data: a fixed global batch of 12 token sequences; rank r of W at micro-step m takes its
equal slice, so the mean of the slices' mean losses is the global batch's mean loss.

    python torch_tiny.py engine OUT STEPS [CONFIG]  # under zerorun (or alone): rank 0 saves
    python torch_tiny.py reference OUT STEPS CONFIG_JSON   # plain torch, one process
    python torch_tiny.py gathered OUT   # GatheredParameters; each rank writes OUT.<rank>
    python torch_tiny.py deepspeed OUT STEPS   # DeepSpeed's engine (ZR_TINY_DS_CONFIG), rank 0
                                               # (ZR_TINY_DS_SAVE=DIR: its checkpoint at the end)

ZR_TINY_ZERO_INIT=1 (engine) builds the model under zerorun.torch.zero_init(); ZR_TINY_INIT=FILE
(reference) starts from the initial weights an engine run saved. ZR_TINY_TORCH_OPT=1 (engine) hands initialize a torch AdamW and a LambdaLR (lr / (1 + step)),
with no "optimizer" block in the config; the reference schedules the same way when its config
has "scheduled": true. ZR_TINY_TORCH_OPT=groups: an AdamW over HF Trainer's two param groups
(weight decay 0.1 on matrices, 0 on biases and norms); the reference's with "groups": true. Checkpoints (engine mode): ZR_TINY_LOAD=DIR resumes from DIR's latest first; ZR_TINY_SAVE=DIR:K
saves after global step K (client_state {"at": K}) and stops there; ZR_TINY_DS_LOAD=DIR goes on
from a DeepSpeed checkpoint of this script (load_deepspeed_checkpoint).
"""
import os
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


class HfCausalLM(torch.nn.Module):
    """A transformers causal LM from a tiny config (no download): GPT-2 or Llama, dropout off;
    forward(tokens, targets) -> its own shifted mean loss over `tokens` + the last target."""

    def __init__(self, kind):
        super().__init__()
        import transformers

        if kind == "gpt2":
            c = transformers.GPT2Config(vocab_size=VOCAB, n_positions=SEQ + 1, n_embd=DIM,
                                        n_layer=2, n_head=2, resid_pdrop=0, embd_pdrop=0,
                                        attn_pdrop=0)
            self.lm = transformers.GPT2LMHeadModel(c)
        else:
            c = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=DIM, intermediate_size=2 * DIM,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=1, max_position_embeddings=SEQ + 1)
            self.lm = transformers.LlamaForCausalLM(c)

    def forward(self, tokens, targets):
        ids = torch.cat([tokens, targets[:, -1:]], dim=1)
        return self.lm(input_ids=ids, labels=ids).loss


def model():
    """ZR_TINY_MODEL: tiny (default), gpt2 or llama."""
    torch.manual_seed(0)
    kind = os.environ.get("ZR_TINY_MODEL", "tiny")
    return Tiny() if kind == "tiny" else HfCausalLM(kind)


def groups(net):
    """HF Trainer's two param groups: decay on matrices, none on biases and norms."""
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if p.dim() > 1 and "norm" not in n],
             "weight_decay": 0.1},
            {"params": [p for n, p in named if p.dim() <= 1 or "norm" in n],
             "weight_decay": 0.0}]


def engine_run(out, steps, config=None):
    import zerorun.torch

    if os.environ.get("ZR_TINY_ZERO_INIT"):
        with zerorun.torch.zero_init():
            net = model()
        assert all(p.is_meta for p in net.parameters())  # Nothing held yet.
    else:
        net = model()
    opt = sched = None
    if os.environ.get("ZR_TINY_TORCH_OPT") == "groups":
        opt = torch.optim.AdamW(groups(net), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    elif os.environ.get("ZR_TINY_TORCH_OPT"):
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3,
                                betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    engine, _, _, _ = zerorun.torch.initialize(model=net, optimizer=opt, lr_scheduler=sched,
                                               config=config)
    ga = engine.gradient_accumulation_steps
    micro = BATCH // (engine.world_size * ga)
    x, y = data()
    norms, losses = [], []
    resumed = None
    init = dict(engine.named_full_tensors())  # The weights the engine starts from.
    init.update({n: p.detach().float() for n, p in engine.module.named_parameters()
                 if not p.requires_grad})
    if os.environ.get("ZR_TINY_LOAD"):
        path, client = engine.load_checkpoint(os.environ["ZR_TINY_LOAD"])
        assert path is not None and client["at"] == engine.global_steps, (path, client)
        resumed = engine.global_steps
    if os.environ.get("ZR_TINY_DS_LOAD"):  # A DeepSpeed checkpoint of this script.
        resumed = engine.load_deepspeed_checkpoint(os.environ["ZR_TINY_DS_LOAD"])
    save_dir, _, save_at = os.environ.get("ZR_TINY_SAVE", "").partition(":")
    while engine.global_steps < steps:
        if save_dir and engine.global_steps == int(save_at):
            engine.save_checkpoint(save_dir, client_state={"at": engine.global_steps})
            break
        for m in range(ga):
            at = (m * engine.world_size + engine.global_rank) * micro
            loss = engine(x[at:at + micro], y[at:at + micro])
            losses.append(float(loss))
            engine.backward(loss)
            engine.step()
        norms.append(engine.get_global_grad_norm())
    full = dict(engine.named_full_tensors())
    # What the module's trainable parameters hold now (stages 0-2; stage 3's are empty between
    # forwards), for the weight-copying path's check.
    module = {n: p.detach().to("cpu", torch.float32).clone()
              for n, p in engine.module.named_parameters()
              if p.requires_grad and engine.stage < 3}
    if engine.global_rank == 0:
        torch.save({"params": full, "module": module, "norms": norms, "losses": losses,
                    "memory": engine.memory(),
                    "init": init, "numel": sum(v.numel() for n, v in full.items()),
                    "resumed": resumed, "max_gathered": engine.max_gathered}, out)


def deepspeed_run(out, steps):
    """The same training on DeepSpeed's engine (the config file ZR_TINY_DS_CONFIG as written):
    rank 0 saves its losses and its gradient norms."""
    import deepspeed

    with open(os.environ["ZR_TINY_DS_CONFIG"]) as f:
        config = json.load(f)
    net = model()
    engine, _, _, _ = deepspeed.initialize(
        model=net, model_parameters=[p for p in net.parameters() if p.requires_grad],
        config=config)
    rank, world = engine.global_rank, engine.world_size
    ga = engine.gradient_accumulation_steps()
    micro = BATCH // (world * ga)
    x, y = data()
    dtype = next(p for p in engine.module.parameters() if p.requires_grad).dtype
    losses, norms = [], []
    for _ in range(steps):
        for m in range(ga):
            at = (m * world + rank) * micro
            loss = engine(x[at:at + micro], y[at:at + micro])
            losses.append(float(loss))
            engine.backward(loss)
            engine.step()
        norms.append(float(engine.get_global_grad_norm()))
    if os.environ.get("ZR_TINY_DS_SAVE"):
        engine.save_checkpoint(os.environ["ZR_TINY_DS_SAVE"], client_state={"at": steps})
    if rank == 0:
        torch.save({"losses": losses, "norms": norms, "dtype": str(dtype)}, out)


def gathered_run(out):
    """GatheredParameters: the whole weight on every rank, then rank 0's change everyone's."""
    import zerorun.torch

    engine, _, _, _ = zerorun.torch.initialize(model=model())
    w = engine.module.blocks[1].up.weight
    full = engine.full_tensor("blocks.1.up.weight")
    with zerorun.torch.GatheredParameters([w]):
        whole = w.shape == full.shape and torch.equal(w.detach().float(), full)
    with zerorun.torch.GatheredParameters([w], modifier_rank=0):
        w.data.fill_(float(engine.global_rank + 1))
    after = engine.full_tensor("blocks.1.up.weight")
    x, y = data()
    micro = BATCH // engine.world_size
    at = engine.global_rank * micro
    loss = engine(x[at:at + micro], y[at:at + micro])
    engine.backward(loss)
    engine.step()
    with open(f"{out}.{engine.global_rank}", "w") as f:
        json.dump({"whole": whole, "after": sorted(set(after.flatten().tolist())),
                   "norm": engine.get_global_grad_norm()}, f)


def reference_run(out, steps, config):
    net = model()
    if os.environ.get("ZR_TINY_INIT"):  # Start from an engine run's initial weights.
        init = torch.load(os.environ["ZR_TINY_INIT"], weights_only=True)["init"]
        net.load_state_dict(init, strict=False)
    opt_params = config["optimizer"]["params"]
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(groups(net) if config.get("groups") else trainable,
                            lr=opt_params["lr"], betas=tuple(opt_params["betas"]),
                            eps=opt_params["eps"], weight_decay=opt_params["weight_decay"])
    sched = None
    if config.get("scheduled"):
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    x, y = data()
    norms = []
    for _ in range(steps):
        opt.zero_grad()
        net(x, y).backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(trainable,
                                                           config["gradient_clipping"])))
        opt.step()
        if sched is not None:
            sched.step()
    params = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    torch.save({"params": params, "norms": norms}, out)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]  # DeepSpeed's flag.
    if args[0] == "deepspeed":
        deepspeed_run(args[1], int(args[2]))
    elif args[0] == "gathered":
        gathered_run(args[1])
    elif args[0] == "engine":
        engine_run(args[1], int(args[2]), args[3] if len(args) > 3 else None)
    else:
        reference_run(args[1], int(args[2]), json.loads(args[3]))
