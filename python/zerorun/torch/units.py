"""How a torch model is cut into ZeRO units: FSDP2's per-block policy by default.

A unit is one flat buffer in libzerorun (gathered, reduced and stepped as one). The default
policy makes each element of the model's largest list of repeated blocks (an nn.ModuleList
whose children share one class: GPT-2's transformer.h, Llama's model.layers) a unit, and every
other trainable parameter one more unit, the root's, named "" (so that a tensor's model-wide name,
"<unit>.<tensor>" or the tensor's own in the root's unit, is its state_dict key, and `zerorun
ckpt consolidate` writes the model's own names). Frozen parameters
(requires_grad False) stay ordinary torch tensors: they are not sharded or stepped.
"""

import torch


def _repeated_blocks(model):
    """The longest nn.ModuleList of same-class children, as (qualified name, list), or None."""
    best = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            kinds = {type(child) for child in module}
            if len(kinds) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    return best


def default_units(model):
    """[(unit name, owning module, [(parameter name, parameter)])], the root's unit ("") first;
    parameter names are the model's (state_dict keys).

    Parameters are trainable ones only, each once (tied parameters belong to the first unit that
    reaches them), in named_parameters() order within a unit.
    """
    seen = set()
    blocks = []
    found = _repeated_blocks(model)
    if found is not None:
        prefix, modules = found
        for i, block in enumerate(modules):
            params = []
            for pname, p in block.named_parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append((f"{prefix}.{i}.{pname}", p))
            if params:
                blocks.append((f"{prefix}.{i}", block, params))
    rest = []
    for pname, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            rest.append((pname, p))
    units = [("", model, rest)] if rest else []
    return units + blocks
