"""Benchmark (label bench; issue 30): a GPT-2 124M-shaped transformers model (seq 1024, bf16) on
one GPU, world 1, one process: zerorun.torch at ZeRO-1/2/3 against torch with
torch.optim.AdamW(fused=True) and FSDP2 (fully_shard per block, bf16 parameters, fp32
reduction), in the same run, systems alternating round by round:

    python gpt2_gpu_bench.py [--device cuda|cpu] [--tiny] [--steps N] [--rounds R]

Prints per system the median tokens/s, the MFU (6N + 12 L d T flops per token, llm.c's and
nanoGPT's count, against the GPU's dense bf16 peak), the model-state bytes held (parameters,
gradients, optimizer state: counted tensor by tensor) against the ZeRO formula for world 1
(16P: fp32 masters, fp32 gradients and Adam's m and v; bf16 working copies add 2P), and the
peak device memory. A system that cannot run here prints "not run" with the reason (the row
stays, so the gap is visible). Reference: llm.c's 124M at ~471K tokens/s per H100.

--device cpu --tiny is the smoke run the test suite makes (tests/python/test_gpu_bench.py): the
same code paths on a 2-layer model on the CPU, where FSDP2 is refused by torch and says so.
"""
import argparse
import os
import statistics
import time

import torch

PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}  # Dense, SXM.


def build(tiny, device):
    import transformers

    torch.manual_seed(0)
    if tiny:
        c = transformers.GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2,
                                    n_head=2)
    else:
        c = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12,
                                    n_head=12)
    c.resid_pdrop = c.embd_pdrop = c.attn_pdrop = 0.0
    return transformers.GPT2LMHeadModel(c).to(device), c


def model_state_bytes(model, optimizer):
    """Parameters, gradients and optimizer state actually held, in bytes."""
    total = 0
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        total += local.numel() * local.element_size()
        if p.grad is not None:
            g = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad
            total += g.numel() * g.element_size()
    for state in getattr(optimizer, "state", {}).values():
        for t in state.values():
            if torch.is_tensor(t) and t.dim() > 0:
                t = t.to_local() if hasattr(t, "to_local") else t
                total += t.numel() * t.element_size()
    return total


def torch_system(model, device, fsdp):
    if fsdp:
        import torch.distributed as dist

        try:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        except ImportError:  # torch < 2.6 keeps FSDP2 under _composable.
            from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard

        if not dist.is_initialized():
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29533")
            dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=0, world_size=1)
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for block in model.transformer.h:
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
    fused = device == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=fused)

    def step(ids):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=not fsdp):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss

    return step, lambda: model_state_bytes(model, opt)


def zerorun_system(model, stage, micro):
    import zerorun.torch

    config = {"train_micro_batch_size_per_gpu": micro, "gradient_clipping": 1.0,
              "bf16": {"enabled": True},
              "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": 0.01}},
              "zero_optimization": {"stage": stage, "overlap_comm": True}}
    engine, _, _, _ = zerorun.torch.initialize(model=model, config=config)

    def step(ids):
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        return loss

    def states():
        m = engine.memory()
        return m["params"] + m["master"] + m["grads"] + m["optimizer"]

    return step, states


def run(system, args, device):
    """Median tokens/s of one run of `system`, its model-state bytes and peak memory."""
    model, c = build(args.tiny, device)
    micro, seq = (2, 64) if args.tiny else (args.micro, 1024)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if system.startswith("zerorun"):
        step, states = zerorun_system(model, int(system[-1]), micro)
    else:
        step, states = torch_system(model, device, system == "fsdp2")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, c.vocab_size, (micro, seq), generator=g).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for i in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        step(ids)
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    p = sum(x.numel() for x in model.parameters())
    flops_per_token = 6 * p + 12 * c.n_layer * c.n_embd * seq
    return micro * seq / statistics.median(times), states(), peak, p, flops_per_token


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--micro", type=int, default=8)
    args = ap.parse_args()
    device = args.device
    peak_flops = None
    if device == "cuda":
        name = torch.cuda.get_device_name()
        peak_flops = next((v for k, v in PEAK_BF16.items() if k in name), None)
        print(f"gpt2 bench: {name}, torch {torch.__version__}")
    systems = ["torch", "fsdp2", "zerorun-z1", "zerorun-z2", "zerorun-z3"]
    results = {s: [] for s in systems}
    failed = {}
    for _ in range(args.rounds):
        for s in systems:
            if s in failed:
                continue
            try:
                results[s].append(run(s, args, device))
            except Exception as e:  # A system that cannot run here: say why, keep the row.
                failed[s] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            if device == "cuda":
                torch.cuda.empty_cache()
    print(f"{'system':<12} {'tokens/s':>10} {'MFU':>6} {'states MiB':>11} {'16P MiB':>8} "
          f"{'peak MiB':>9}")
    for s in systems:
        if s in failed:
            print(f"{s:<12} not run: {failed[s]}")
            continue
        tps = statistics.median(r[0] for r in results[s])
        _, states, peak, p, fpt = results[s][-1]
        mfu = f"{100 * tps * fpt / peak_flops:5.1f}%" if peak_flops else "    -"
        st = f"{states / 2**20:11.1f}" if states else f"{'-':>11}"
        print(f"{s:<12} {tps:10.0f} {mfu:>6} {st} {16 * p / 2**20:8.1f} {peak / 2**20:9.1f}")
    base = [statistics.median(r[0] for r in results[s]) for s in ("torch",) if results[s]]
    for s in systems[1:]:
        if base and results[s]:
            ratio = statistics.median(r[0] for r in results[s]) / base[0]
            print(f"ratio {s}/torch: {ratio:.2f}")


if __name__ == "__main__":
    main()
