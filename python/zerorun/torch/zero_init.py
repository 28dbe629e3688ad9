"""zerorun.torch.zero_init(): build a model that no rank ever holds whole (DeepSpeed's zero.Init).

    with zerorun.torch.zero_init():
        model = transformers.AutoModelForCausalLM.from_config(config)
    engine, *_ = zerorun.torch.initialize(model=model, config=...)

Inside the block every parameter goes to the meta device as it is registered (no memory; the
module's buffers stay as they are). initialize() then makes the parameters one unit at a time:
each is filled with NaN, given the constant it was registered with (torch.ones / zeros: norms'
weights and biases), then the modules of the unit re-run their initialisation (reset_parameters,
then transformers' _init_weights where the model is or holds a transformers model, as its
post_init does), handed to
the engine (rank 0's values, broadcast) and dropped. So a rank holds one unit whole at most. A
parameter none of that gives a value to (left NaN) is refused, naming it and the fix (init_fn).
The values are drawn like the model's own initialisation but not bit for bit (the random
stream runs in another order).
"""

import contextlib
import math

import torch


@contextlib.contextmanager
def zero_init():
    """Parameters registered inside the block go to the meta device (see the module's doc)."""
    original = torch.nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is None or param.is_meta:
            return
        meta = torch.nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        meta._zerorun_fill = _constant_of(param)
        module._parameters[name] = meta

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def _constant_of(t):
    """The value every element of t holds, or None (what torch.ones / zeros made)."""
    if t.numel() == 0 or not t.is_floating_point():
        return None
    first = t.detach().reshape(-1)[0]
    value = float(first)
    if math.isnan(value) or not bool((t.detach() == first).all()):
        return None
    return value


def materialize(model, modules, params, init_fn=None):
    """Gives the meta parameters among `params` ([(name, parameter)]) memory and values by
    re-running the initialisation of `modules` (those of one unit); ValueError naming a
    parameter nothing initialised."""
    todo = [(n, p) for n, p in params if p.is_meta]
    if not todo:
        return
    for _, p in todo:
        fill = getattr(p, "_zerorun_fill", None)
        made = torch.nn.Parameter(torch.full(p.shape, math.nan if fill is None else fill,
                                             dtype=p.dtype), requires_grad=p.requires_grad)
        torch.utils.swap_tensors(p, made)  # The same Parameter object (ties, optimizers).
    made = {id(p) for _, p in todo}
    # transformers' per-module init: the model's, or that of the first transformers model in it.
    hf_init = next((m._init_weights for m in model.modules() if hasattr(m, "_init_weights")), None)
    with torch.no_grad():
        for m in modules:
            if not any(id(p) in made for p in m.parameters()):
                continue  # Nothing of this unit's below it.
            if init_fn is not None:
                init_fn(m)
                continue
            if hasattr(m, "reset_parameters") and any(
                    id(p) in made for p in m.parameters(recurse=False)):
                m.reset_parameters()
            if hf_init is not None:  # transformers' post_init, module by module.
                hf_init(m)
    for name, p in todo:
        if p.is_floating_point() and bool(torch.isnan(p.detach()).any()):
            raise ValueError(
                f"zerorun.torch.zero_init: parameter {name} {tuple(p.shape)} has no initial "
                "value: its module has no reset_parameters, the model no _init_weights, and it "
                "was not registered as a constant. Fix: pass initialize(init_fn=fn), fn(module) "
                "initialising a module's own parameters, or build the model outside zero_init")
