"""The optimizer zerorun.torch's engine runs: its AdamW (C++, on this rank's fp32 shard), with
the config's "optimizer" block or the hyper-parameters of a torch AdamW (or Adam without weight
decay) handed to initialize, whose lr a torch lr_scheduler may move (the engine steps the
scheduler after each optimizer step, as DeepSpeed does). Param groups (of that optimizer, or
model_parameters dicts as HF Trainer builds them) may differ in weight_decay, which the engine
applies per parameter; what it cannot run (another optimizer, groups that differ in lr, betas or
eps, amsgrad, Adam's L2 decay) is refused naming the fix.
"""


def adam_of(optimizer, model):
    """[beta1, beta2, eps, weight_decay] of a torch Adam / AdamW the engine can run as its AdamW,
    or ValueError naming what differs and the fix."""
    import torch

    kind = "AdamW" if isinstance(optimizer, torch.optim.AdamW) else \
        "Adam" if isinstance(optimizer, torch.optim.Adam) else type(optimizer).__name__
    if kind not in ("AdamW", "Adam"):
        raise ValueError(f"zerorun.torch.initialize: optimizer {kind} is not supported: the "
                         "engine runs AdamW (torch.optim.AdamW, or Adam without weight_decay), "
                         "or use the config's \"optimizer\" block")
    groups = optimizer.param_groups
    keys = ("lr", "betas", "eps")  # weight_decay may differ: per parameter in the engine.
    first = {k: groups[0][k] for k in keys}
    for i, g in enumerate(groups[1:], 1):
        for k in keys:
            if g[k] != first[k]:
                raise ValueError(
                    f"zerorun.torch.initialize: the optimizer's param_groups differ in {k} "
                    f"({first[k]} in group 0, {g[k]} in group {i}); the engine runs one {k} "
                    "for every parameter for now (weight_decay may differ): use one value")
    for g in groups:
        if g.get("amsgrad") or g.get("maximize"):
            raise ValueError(f"zerorun.torch.initialize: {kind}(amsgrad/maximize=True) is not "
                             "supported")
        if kind == "Adam" and g["weight_decay"] != 0:
            raise ValueError("zerorun.torch.initialize: torch.optim.Adam with weight_decay "
                             f"{g['weight_decay']} adds L2 to the gradient, which the engine's "
                             "AdamW does not do: use torch.optim.AdamW (decoupled decay)")
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    listed = {id(p) for g in groups for p in g["params"]}
    if listed != trainable:
        raise ValueError("zerorun.torch.initialize: the optimizer's parameters are not the "
                         f"model's trainable ones ({len(listed)} vs {len(trainable)}): build it "
                         "over [p for p in model.parameters() if p.requires_grad]")
    adam = [float(first["betas"][0]), float(first["betas"][1]), float(first["eps"]),
            float(groups[0]["weight_decay"])]
    return adam, {id(p): float(g["weight_decay"]) for g in groups for p in g["params"]}


def group_decay(model_parameters):
    """{id(param): weight_decay} of DeepSpeed-style model_parameters groups (dicts with
    "params" and "weight_decay", as HF Trainer passes them); {} for a plain iterable."""
    if model_parameters is None:
        return {}
    groups = list(model_parameters)
    out = {}
    for g in groups:
        if isinstance(g, dict) and "weight_decay" in g:
            out.update({id(p): float(g["weight_decay"]) for p in g["params"]})
    return out
