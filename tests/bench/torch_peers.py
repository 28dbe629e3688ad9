"""One rank of the zerorun.torch benchmark (tests/bench/torch_engine_bench.sh): the same
transformers GPT-2 (~23M parameters, seq 256, fp32, AdamW, clipping 1.0) trained on 2 CPU ranks
by one system, under zerorun's launcher (which sets the torchrun-style variables):

    python torch_peers.py zerorun|deepspeed|fsdp|ddp OUT_DIR STEPS

zerorun and deepspeed read their ZeRO stage from the launch's --config (zerorun: the effective
ZERORUN_CONFIG; deepspeed: the file itself, named by ZR_BENCH_CONFIG); fsdp
is torch's FullyShardedDataParallel, FULL_SHARD per GPT-2 block (FSDP2's fully_shard refuses
CPU in torch 2.5); ddp is DistributedDataParallel; both over gloo.
Each rank writes OUT_DIR/rank_<r>.json: the median step seconds after 2 warm-up steps, the
tokens per step of the whole job, and its peak RSS.
"""
import json
import os
import resource
import statistics
import sys
import time

import torch

SEQ, MICRO = 256, 2


def gpt2():
    import transformers

    torch.manual_seed(0)
    c = transformers.GPT2Config(vocab_size=8192, n_positions=SEQ, n_embd=512, n_layer=6,
                                n_head=8, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    return transformers.GPT2LMHeadModel(c)


def batch(rank, step):
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randint(0, 8192, (MICRO, SEQ), generator=g)


def main(mode, out_dir, steps):
    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    model = gpt2()
    if mode == "zerorun":
        import zerorun.torch

        engine, _, _, _ = zerorun.torch.initialize(model=model)

        def train_step(ids):
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()
    elif mode == "deepspeed":
        import deepspeed

        # The config as written (ZR_BENCH_CONFIG): zerorun's effective one carries keys this
        # DeepSpeed version's schema refuses.
        with open(os.environ["ZR_BENCH_CONFIG"]) as f:
            config = json.load(f)
        engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                               config=config)

        def train_step(ids):
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()
    else:
        torch.distributed.init_process_group("gloo")
        if mode == "fsdp":
            # FSDP2 (fully_shard) refuses CPU in torch 2.5 ("FSDP requires CUDA for streams"):
            # FSDP1 FULL_SHARD wrapped per block is torch's sharded peer here.
            import functools

            from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
            from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
            from transformers.models.gpt2.modeling_gpt2 import GPT2Block

            model = FullyShardedDataParallel(
                model, sharding_strategy=ShardingStrategy.FULL_SHARD,
                device_id=torch.device("cpu"), use_orig_params=True,
                auto_wrap_policy=functools.partial(transformer_auto_wrap_policy,
                                                   transformer_layer_cls={GPT2Block}))
        else:
            model = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

        def train_step(ids):
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            if mode == "fsdp":
                model.clip_grad_norm_(1.0)  # FSDP's own: the norm over every rank's shard.
            else:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        train_step(batch(rank, step))
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(os.path.join(out_dir, f"rank_{rank}.json"), "w") as f:
        json.dump({"step_s": statistics.median(times[2:]), "tokens": world * MICRO * SEQ,
                   "rss_mib": peak_mib}, f)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]
    main(args[0], args[1], int(args[2]))
