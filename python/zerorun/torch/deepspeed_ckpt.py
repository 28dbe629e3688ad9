"""A DeepSpeed ZeRO-1/2/3 checkpoint into a zerorun.torch engine, optimizer state included, at
any world size and ZeRO stage: a run trained with DeepSpeed goes on on zerorun's engine.

DeepSpeed's layout (0.16; its zero_to_fp32.py reads the same): <dir>/<tag>/, one
zero_pp_rank_<r>_mp_rank_00_optim_states.pt per old rank holding its partition of the fp32
masters and of Adam's exp_avg / exp_avg_sq, and the parameter names and shapes in
mp_rank_00_model_states.pt (ZeRO-1/2) or zero_pp_rank_0_mp_rank_00_model_states.pt (ZeRO-3).
ZeRO-1/2 partition each param group's flat buffer (parameters back to back, padding at the end);
ZeRO-3 partitions every parameter on its own (ceil(numel / world) each, padded). The files are
memory-mapped, and each tensor is put together, handed to the engine (the part this rank owns is
kept) and dropped, so no rank holds the old state whole.

Also `python -m zerorun.torch.deepspeed_ckpt DIR OUT.safetensors`, which `zerorun ckpt import
DIR` runs: the masters and Adam's state as one safetensors file ("<name>", "exp_avg:<name>",
"exp_avg_sq:<name>", F32; the step and the client state in its metadata), written tensor by tensor.
"""

import glob
import json
import math
import os
import pickle
import re
import sys

import torch

from zerorun.torch import safetensors_io

# What DeepSpeed itself keeps in mp_rank_00_model_states.pt; any other key is the client_state
# the script handed to save_checkpoint (DeepSpeed merges it into the same dict).
_DS_KEYS = {"module", "buffer_names", "optimizer", "param_shapes", "frozen_param_shapes",
            "shared_params", "frozen_param_fragments", "lr_scheduler", "data_sampler",
            "random_ltd", "sparse_tensor_module_names", "skipped_steps", "global_steps",
            "global_samples", "dp_world_size", "mp_world_size", "ds_config", "ds_version"}


# DeepSpeed's ZeroStageEnum members by name (pickled as getattr(ZeroStageEnum, name)).
_ZERO_STAGES = {"disabled": 0, "optimizer_states": 1, "gradients": 2, "weights": 3}


class _OpaqueType(type):
    def __getattr__(cls, name):  # An enum member: getattr(cls, "gradients").
        if name.startswith("__"):
            raise AttributeError(name)
        return cls(name)


class _Opaque(metaclass=_OpaqueType):
    """An object of a DeepSpeed class in the pickle (a loss scaler, an enum) where DeepSpeed is
    not importable (zerorun --engine zerorun shadows it): kept as its state; a ZeRO stage enum
    member gives its number."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __int__(self):
        return _ZERO_STAGES[self.args[0]]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if module.split(".")[0] != "deepspeed":
                raise
            return _OpaqueType(name, (_Opaque,), {"__module__": module})


class _pickle_module:  # torch.load's pickle_module: pickle with _Unpickler.
    __name__ = "zerorun.torch.deepspeed_ckpt"
    Unpickler = _Unpickler
    load = staticmethod(pickle.load)


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True,
                      pickle_module=_pickle_module)


def _tag_dir(load_dir, tag):
    """<load_dir>/<tag>, the tag `latest` names when None, or load_dir itself when it is one."""
    if tag is None and glob.glob(os.path.join(load_dir, "zero_pp_rank_*_optim_states.pt")):
        return load_dir
    if tag is None:
        latest = os.path.join(load_dir, "latest")
        if not os.path.isfile(latest):
            raise FileNotFoundError(f"{load_dir}: no DeepSpeed checkpoint (neither a latest file "
                                    "nor zero_pp_rank_*_mp_rank_00_optim_states.pt); give the "
                                    "directory save_checkpoint wrote")
        with open(latest) as f:
            tag = f.read().strip()
    return os.path.join(load_dir, str(tag))


def read_deepspeed(load_dir, tag=None):
    """(step, {parameter name: (fp32 master, exp_avg, exp_avg_sq)}, model_states), the tensors
    made on demand; model_states is DeepSpeed's dict (its scheduler, the client state)."""
    d = _tag_dir(load_dir, tag)
    files = glob.glob(os.path.join(d, "zero_pp_rank_*_mp_rank_00_optim_states.pt"))
    if not files:
        raise FileNotFoundError(f"{d}: no DeepSpeed ZeRO checkpoint (zero_pp_rank_*_mp_rank_00_"
                                "optim_states.pt); give the directory save_checkpoint wrote")
    files.sort(key=lambda f: int(re.search(r"zero_pp_rank_(\d+)_", f).group(1)))
    ranks = [_load(f)["optimizer_state_dict"] for f in files]
    stage = int(ranks[0]["zero_stage"])
    model = os.path.join(d, "mp_rank_00_model_states.pt" if stage < 3 else
                         "zero_pp_rank_0_mp_rank_00_model_states.pt")
    states = _load(model)
    groups = states["param_shapes"]
    if stage < 3:
        state = [r["base_optimizer_state"]["state"] for r in ranks]
        step = int(state[0][0]["step"])
        out = {}
        for g, shapes in enumerate(groups):
            flat = [torch.cat([r["single_partition_of_fp32_groups"][g] for r in ranks])]
            flat += [torch.cat([s[g][k] for s in state]) for k in ("exp_avg", "exp_avg_sq")]
            at = 0
            for name, shape in shapes.items():
                n = math.prod(shape)
                out[name] = tuple(t[at:at + n].view(shape) for t in flat)
                at += n
        return step, out, states
    world = len(ranks)
    state = [r["optimizer_state_dict"]["state"] for r in ranks]
    step = int(state[0][0]["step"])
    per_rank = [(torch.cat(list(r["fp32_flat_groups"])),
                 torch.cat([s[i]["exp_avg"] for i in sorted(s)]),
                 torch.cat([s[i]["exp_avg_sq"] for i in sorted(s)])) for r, s in zip(ranks, state)]
    out, at = {}, 0
    for shapes in groups:
        for name, shape in shapes.items():
            n = math.prod(shape)
            part = math.ceil(n / world)
            out[name] = tuple(torch.cat([p[k][at:at + part] for p in per_rank])[:n].view(shape)
                              for k in range(3))
            at += part
    return step, out, states


def load_into(engine, load_dir, tag=None):
    """Loads a DeepSpeed checkpoint into `engine` (every rank calls it); returns its step and
    the client_state DeepSpeed saved with it."""
    step, tensors, states = read_deepspeed(load_dir, tag)
    mine = {pname for _, _, ps in engine._units for pname, _ in ps}
    missing = sorted(mine - set(tensors))
    if missing:
        raise ValueError(f"{load_dir}: the DeepSpeed checkpoint has no {missing[:5]} (of "
                         f"{len(missing)} missing): is it of this model? Its parameters: "
                         f"{sorted(tensors)[:5]}...")
    for u, (_, _, ps) in enumerate(engine._units):
        for t, (pname, _) in enumerate(ps):
            master, m, v = (x.float().contiguous().reshape(-1) for x in tensors[pname])
            engine._bridge.set_tensor(u, t, master, -1)  # Every rank read the same.
            engine._bridge.set_adam(u, t, m, v)
    engine._bridge.finish_restore(step)
    engine._weights_changed()
    engine.global_steps = step
    engine._lr_steps = _lr_steps(states, step)
    engine.micro_steps = step * engine.gradient_accumulation_steps
    return step, _client_state(states)


def _lr_steps(states, step):
    """The steps DeepSpeed's scheduler counted (applied ones: not the fp16 ones it skipped)."""
    schedule = states.get("lr_scheduler") or {}
    return int(schedule.get("last_batch_iteration", step - 1)) + 1


def _client_state(states):
    """The client_state DeepSpeed saved with the checkpoint (the keys it does not own)."""
    return {k: v for k, v in states.items() if k not in _DS_KEYS}


def write_safetensors(path, step, tensors, state):
    """tensors: {name: (master, exp_avg, exp_avg_sq)} as one F32 safetensors file, streamed;
    state: the engine's checkpoint state (engine.checkpoint_state) for the manifest."""
    named = []
    for name, states in tensors.items():
        named += [(name, states[0].float()), ("exp_avg:" + name, states[1].float()),
                  ("exp_avg_sq:" + name, states[2].float())]
    safetensors_io.write(path, named, {"step": step, "client_state": json.dumps(state),
                                       "format": "pt"})


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: python -m zerorun.torch.deepspeed_ckpt DIR OUT.safetensors\n")
        return 2
    try:
        step, tensors, states = read_deepspeed(argv[0])
    except FileNotFoundError as e:
        sys.stderr.write(f"zerorun ckpt import: {e}\n")
        return 66
    except (KeyError, IndexError, RuntimeError, pickle.UnpicklingError) as e:
        sys.stderr.write(f"zerorun ckpt import: {argv[0]} is not a DeepSpeed ZeRO checkpoint "
                         f"this reader knows ({type(e).__name__}: {e})\n")
        return 65
    from zerorun.torch.engine import checkpoint_state

    write_safetensors(argv[1], step, tensors,
                      checkpoint_state(step, _lr_steps(states, step), _client_state(states)))
    print(f"{len(tensors)} tensors with Adam's state, step {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
