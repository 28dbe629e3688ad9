"""A transformers GPT-2 (tiny config, no download) trained 3 steps by zerorun.torch, then saved
as a libzerorun checkpoint: OUT/ckpt (save_checkpoint), OUT/hf/config.json (the model's config,
for from_pretrained after `zerorun ckpt consolidate`), OUT/engine.pt (rank 0: the engine's full
fp32 weights by state_dict name, the frozen ones too). The position embeddings and the first
block's ln_1 are frozen (LoRA-style: not trained, not in the optimizer). Run under zerorun with
--config."""
import os
import sys

import torch
import transformers

import zerorun.torch


def main(out):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2,
                                     n_head=2, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    model = transformers.GPT2LMHeadModel(config)
    for p in [model.transformer.wpe.weight, *model.transformer.h[0].ln_1.parameters()]:
        p.requires_grad_(False)
    engine, _, _, _ = zerorun.torch.initialize(model=model)
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(engine.global_rank))
    for _ in range(3):
        engine.backward(engine(input_ids=ids, labels=ids).loss)
        engine.step()
    engine.save_checkpoint(os.path.join(out, "ckpt"))
    full = dict(engine.named_full_tensors())
    full.update((n, p.detach().float()) for n, p in model.named_parameters() if not p.requires_grad)
    if engine.global_rank == 0:
        config.save_pretrained(os.path.join(out, "hf"))
        torch.save(full, os.path.join(out, "engine.pt"))


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if not a.startswith("--local_rank")][0])
