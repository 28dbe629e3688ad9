"""The zerorun.torch engine: a torch module driven by libzerorun's ZeroEngine.

Three points in torch drive the engine (the pattern of DeepSpeed ZeRO-3 and FSDP2):
- the parameters are views: at stages 0-2 of the engine's resident working weights, bound
  once; at stage 3 of a torch buffer per unit whose storage the unit's forward pre-hook fills
  (the engine all-gathers, prefetching along the recorded order) and its forward post-hook
  frees, a hook on the unit's outputs fills again when backward reaches them, and the unit's
  last gradient frees (FSDP2's storage trick: autograd's saved views see the refill), so at most
  the units in use are whole at once; stage 3 parameters are empty outside forward/backward;
- each parameter's post-accumulate-grad hook counts it in; the unit's last one adds the unit's
  gradients into a slot of the engine's, drops torch's and hands the slot over (GradsReady:
  stages 2-3 reduce-scatter it, on the communication thread with overlap_comm, while backward
  goes on);
- an end-of-backward callback hands over what backward did not reach (unused parameters: zeros).
Engine.step() at an accumulation boundary runs the engine's step: average, unscale, norm,
clip, AdamW on this rank's fp32 shard, write-back and share.

initialize(training_data=...) returns DeepSpeed's loader: this rank's share of the data
(DistributedSampler, seed 0) in micro batches of the config's size. Checkpoints are libzerorun's
(atomic, sha256-checked, loadable at any world size and stage). The optimizer: see optim.py.
A model built under zero_init() (zero_init.py) is made one unit at a time. A model on a GPU
computes there while the engine keeps its state in host memory (ZeRO-Offload's placement): the
weights are copied to a device buffer per unit after each step (stages 0-2) or at each gather
(stage 3), the gradients into the engine's slots when a unit's are in. Not yet supported
(refused with the fix, never trained differently): parameters on several devices.
"""

import atexit
import base64
import glob
import json
import math
import os
import pickle
import tempfile
import weakref

import torch

from zerorun.torch import safetensors_io
from zerorun.torch.optim import adam_of, group_decay
from zerorun.torch.units import default_units
from zerorun.torch.zero_init import materialize

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _bridge_class():
    try:
        from zerorun import _zerorun
    except ImportError as e:
        raise ImportError(
            "zerorun.torch needs the compiled module zerorun._zerorun, which is built with "
            "zerorun (python/ext; nanobind from the project venv): run the README's build, "
            f"then use PYTHONPATH=<build>/python ({e})") from e
    return _zerorun.Bridge


def _finite(value):
    """A config for JSON: HF's float("inf") (steps_per_print) as a large integer."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return 2**62 if value > 0 else -2**62
    return value


def _config_path(config):
    """The config file the engine reads: a path as given, a dict written to a temporary file
    (both win over ZERORUN_CONFIG); None: under zerorun, ZERORUN_CONFIG (the effective config
    pre-flight checked)."""
    if config is None:
        if os.environ.get("ZERORUN_CONFIG"):
            return os.environ["ZERORUN_CONFIG"]
        raise ValueError("zerorun.torch.initialize: no config: pass config=<path or dict> (the "
                         "DeepSpeed JSON), or run under zerorun --config")
    if isinstance(config, dict):
        f = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="zerorun-", delete=False)
        with f:
            json.dump(_finite(config), f)
        return f.name
    return os.fspath(config)


class Engine:
    """DeepSpeed's engine verbs over libzerorun (see the module's docstring)."""

    def __init__(self, model, config=None, units=None, optimizer=None, lr_scheduler=None,
                 model_parameters=None, init_fn=None):
        params = list(model.parameters())
        devices = sorted({str(p.device) for p in params if p.device.type != "meta"})
        if len(devices) > 1:
            raise ValueError(f"zerorun.torch: the model has parameters on {devices}: put it on "
                             "one device (model.to(...)) before initialize")
        # The device torch computes on. Off the CPU the engine keeps its state in host memory
        # (ZeRO-Offload's placement) and the weights are copied to per-unit device buffers,
        # the gradients back into the engine's slots; ZR_TORCH_COPY_WEIGHTS=1 takes that
        # copying path on the CPU too (its test).
        self.device = torch.device(devices[0] if devices else "cpu")
        self._copy = (self.device.type != "cpu" or
                      os.environ.get("ZR_TORCH_COPY_WEIGHTS") == "1")
        self.module = model
        self._units = units if units is not None else default_units(model)
        if not self._units:
            raise ValueError("zerorun.torch.initialize: the model has no trainable parameters")
        path = _config_path(config)
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        adam, decay = adam_of(optimizer, model) if optimizer is not None else ([], {})
        decay.update(group_decay(model_parameters))
        # Tensor names relative to their unit: the engine's "<unit>.<tensor>" is the state_dict key.
        spec = [(name, [(_relative(name, pname), list(p.shape), decay.get(id(p), -1.0))
                         for pname, p in ps])
                for name, _, ps in self._units]
        self._bridge = _bridge_class()(path, spec, adam, config is not None)
        effective = self._effective = json.loads(self._bridge.config_json)
        if optimizer is not None and "optimizer" in effective:
            raise ValueError("zerorun.torch.initialize: both a torch optimizer and the config's "
                             "\"optimizer\" block: keep one (DeepSpeed refuses both too)")
        if lr_scheduler is not None and "scheduler" in effective:
            raise ValueError("zerorun.torch.initialize: both a torch lr_scheduler and the "
                             "config's \"scheduler\" block: keep one")
        if isinstance(config, dict) and path != os.environ.get("ZERORUN_CONFIG"):
            os.unlink(path)
        b = self._bridge
        atexit.register(_close_at_exit, weakref.ref(self))
        self.dtype = _DTYPES[b.dtype]
        self.stage = b.stage
        self.global_rank, self.world_size = b.rank, b.world_size
        self.gradient_accumulation_steps = b.accumulation_steps
        self.micro_batch = b.micro_batch  # train_micro_batch_size_per_gpu
        self.micro_steps = 0
        self.global_steps = 0
        self._lr_steps = 0  # Applied (not skipped) steps: the config's schedule moves on these.
        self._grad_norm = None
        self._loss_sum = 0.0
        self._tokens = 0
        self._offsets = [b.offsets(u) for u in range(len(self._units))]
        self._shapes = [[tuple(p.shape) for _, p in ps] for _, _, ps in self._units]
        # The initial weights: rank 0's, broadcast (DeepSpeed does the same), in fp32; a model
        # built under zero_init is made one unit at a time here and dropped again.
        owners = _unit_modules(model, self._units)
        for u, (_, _, ps) in enumerate(self._units):
            materialize(model, owners[u], ps, init_fn)
            for t, (_, p) in enumerate(ps):
                b.set_tensor(u, t, p.detach().to("cpu", torch.float32).contiguous())
                p.data = torch.empty(0, dtype=p.dtype, device=self.device)
        frozen = [(n, p) for n, p in model.named_parameters() if not p.requires_grad]
        materialize(model, list(model.modules()), frozen, init_fn)
        for _, _, ps in self._units:
            for _, p in ps:
                p.grad = None
        for m in model.modules():  # The frozen rest computes in the working dtype too.
            for name, p in m.named_parameters(recurse=False):
                if not p.requires_grad:
                    p.data = p.data.to(self.dtype)
            for name, buf in m.named_buffers(recurse=False):
                if buf.is_floating_point():
                    setattr(m, name, buf.to(self.dtype))
        self._pending = [len(ps) for _, _, ps in self._units]
        self._ready = [False] * len(self._units)
        self._callback_queued = False
        # Stage 3: per unit a torch buffer the parameters view for good; its storage holds the
        # gathered unit only while needed (FSDP2's way: autograd's saved views see it again when
        # it is refilled before backward) and is freed (resized to 0) in between. Copying
        # (a device) at stages 0-2: the buffer holds the unit for good, refreshed after a step.
        self._buf = [None] * len(self._units)
        self._resident = [False] * len(self._units)
        self._pins = [0] * len(self._units)  # GatheredParameters holding a unit whole.
        self.max_gathered = 0  # Stage 3: the most units whole at once so far.
        self._hooks = []
        for u, (_, module, ps) in enumerate(self._units):
            self._hooks.append(module.register_forward_pre_hook(self._pre_forward(u)))
            self._hooks.append(module.register_forward_hook(self._post_forward(u)))
            for t, (_, p) in enumerate(ps):
                self._hooks.append(p.register_post_accumulate_grad_hook(self._on_grad(u, t)))
                p._zerorun = (self, u, t)  # For GatheredParameters.
            if self.stage < 3 and not self._copy:  # The engine's resident weights, for good.
                self._bind(u, self._bridge.acquire(u, False))
                self._bridge.release(u)
            else:
                self._buf[u] = torch.empty(self._padded(u), dtype=self.dtype, device=self.device)
                self._bind(u, self._buf[u])
                if self.stage == 3:
                    self._buf[u].untyped_storage().resize_(0)
                else:
                    self._refresh(u)

    def _padded(self, u):
        """Elements of the unit's flat buffer up to its last tensor's end."""
        off, n = self._offsets[u][-1]
        return off + n

    def _bind(self, u, flat):
        for (off, n), shape, (_, p) in zip(self._offsets[u], self._shapes[u], self._units[u][2]):
            p.data = flat[off:off + n].view(shape)

    # --- forward and backward: the weights ---------------------------------------------------
    def _gather(self, u, backward):
        """Stage 3: the unit's weights into its buffer (the engine all-gathers, prefetching
        along the recorded order), unless they are there."""
        if self._resident[u]:
            return
        buf = self._buf[u]
        buf.untyped_storage().resize_(buf.numel() * buf.element_size())
        flat = self._bridge.acquire(u, backward)
        buf.data.copy_(flat[:buf.numel()])  # .data: autograd's version counter stays.
        self._bridge.release(u)
        self._resident[u] = True
        self.max_gathered = max(self.max_gathered, sum(self._resident))

    def _refresh(self, u):
        """Copying at stages 0-2: the unit's weights from the engine into its device buffer
        (after the unit's post-step share)."""
        flat = self._bridge.acquire(u, False)
        self._buf[u].data.copy_(flat[:self._buf[u].numel()])
        self._bridge.release(u)

    def _weights_changed(self):
        """The engine's weights moved (a step, a load, a modified GatheredParameters): copying at
        stages 0-2, every unit's device buffer follows."""
        if self._copy and self.stage < 3:
            for u in range(len(self._units)):
                self._refresh(u)

    def _free(self, u):
        if self._resident[u] and self._pins[u] == 0:
            self._buf[u].untyped_storage().resize_(0)
            self._resident[u] = False

    def _pre_forward(self, u):
        def hook(module, args):
            if self.stage == 3:
                self._gather(u, False)
            elif not self._copy:
                self._bridge.acquire(u, False)  # Waits for the unit's post-step share.
                self._bridge.release(u)
        return hook

    def _post_forward(self, u):
        def hook(module, args, output):
            if self.stage < 3:
                return
            if torch.is_grad_enabled() and module.training:
                # Gathered again when backward reaches the unit's outputs.
                for t in _tensors(output):
                    if t.requires_grad:
                        t.register_hook(lambda grad: self._gather(u, True))
            self._free(u)
        return hook

    # --- backward: gradients into the engine ---------------------------------------------
    def _on_grad(self, u, t):
        def hook(p):
            if not self._callback_queued:
                self._callback_queued = True
                torch.autograd.Variable._execution_engine.queue_callback(self._end_backward)
            self._pending[u] -= 1
            if self._pending[u] == 0:
                self._unit_done(u)
        return hook

    def _unit_done(self, u):
        # torch's gradients of the unit's parameters go into the engine's slot together, once
        # the last is in (hooks of different units interleave; a slot is held only here).
        slot = self._bridge.grads(u)
        for (off, n), shape, (_, p) in zip(self._offsets[u], self._shapes[u], self._units[u][2]):
            if p.grad is not None:
                slot[off:off + n].view(shape).add_(p.grad.to(slot.device))  # Off a device.
                p.grad = None
        self._bridge.grads_ready(u)
        self._ready[u] = True
        if self.stage == 3:
            self._free(u)

    def _end_backward(self):
        for u in range(len(self._units)):
            if not self._ready[u]:
                self._unit_done(u)
        self._pending = [len(ps) for _, _, ps in self._units]
        self._ready = [False] * len(self._units)
        self._callback_queued = False

    # --- DeepSpeed's verbs -------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        first = next((a for a in list(args) + list(kwargs.values()) if torch.is_tensor(a)), None)
        if first is not None and self.module.training:  # Tokens (or samples) for tokens/s.
            self._tokens += first.numel()
        return self.module(*args, **kwargs)

    forward = __call__

    def backward(self, loss):
        """loss.backward() with the loss scale (fp16); the engine averages over micro-steps."""
        self._loss_sum += float(loss.detach())
        scale = self._bridge.loss_scale
        (loss * scale if scale != 1.0 else loss).backward()
        if self._callback_queued:  # Hooks ran outside autograd's engine: finish here.
            self._end_backward()
        return loss

    def is_gradient_accumulation_boundary(self):
        return (self.micro_steps + 1) % self.gradient_accumulation_steps == 0

    def step(self):
        """Counts a micro-step; at the accumulation boundary runs the optimizer step."""
        boundary = self.is_gradient_accumulation_boundary()
        self.micro_steps += 1
        if not boundary:
            return
        n = self.global_steps + 1
        r = self._bridge.step(n, self._lr(),
                              self._loss_sum / self.gradient_accumulation_steps, self._tokens)
        self._loss_sum = 0.0
        self._tokens = 0
        self.global_steps = n
        self._lr_steps += 0 if r["skipped"] else 1
        if not r["skipped"]:
            self._weights_changed()
        self._grad_norm = r["grad_norm"]
        self.skipped = r["skipped"]
        self.mean_loss = r["mean_value"]
        if self.lr_scheduler is not None and not self.skipped:
            self.lr_scheduler.step()  # As DeepSpeed steps a client scheduler.

    def _lr(self):
        """The next step's learning rate: the torch optimizer's (which a torch scheduler moves),
        else the config's schedule at the next applied step (as DeepSpeed's engine, which does
        not step its scheduler on a skipped fp16 step)."""
        if self.optimizer is not None:
            return float(self.optimizer.param_groups[0]["lr"])
        return self._bridge.lr_at(self._lr_steps + 1)

    def zero_grad(self):
        """Gradients live in the engine and are zeroed by its step: nothing to do."""

    def get_global_grad_norm(self):
        return self._grad_norm

    def get_lr(self):
        return [self._lr()]

    def train(self, mode=True):
        self.module.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def full_tensor(self, name):
        """The full fp32 value of a trainable parameter by its name (a collective at stages
        1-3 and with 16-bit weights: every rank calls it)."""
        for u, (_, _, ps) in enumerate(self._units):
            for t, (pname, _) in enumerate(ps):
                if pname == name:
                    out = torch.empty(self._offsets[u][t][1], dtype=torch.float32)
                    self._bridge.get_tensor(u, t, out)
                    return out.view(self._shapes[u][t])
        raise KeyError(f"no trainable parameter {name}")

    def named_full_tensors(self):
        """(name, full fp32 value) of every trainable parameter (collectives, as full_tensor)."""
        return [(pname, self.full_tensor(pname)) for _, _, ps in self._units for pname, _ in ps]

    def memory(self):
        """The engine's memory report (bytes): model states, slots, allocated and peak."""
        return self._bridge.memory()

    def close(self):
        """Ends the engine now (also at interpreter exit): its memory, threads and swap files
        go; the module's trainable parameters are unusable afterwards."""
        self._bridge.close()

    # --- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, save_dir, tag=None, client_state=None, save_latest=True,
                        exclude_frozen_parameters=False):
        """libzerorun's checkpoint of the trainable state (every rank calls it): <save_dir>/<tag>
        (DeepSpeed's default tag global_step<N>), one shard per rank, a manifest with sha256s,
        published atomically, then <save_dir>/latest. client_state: any picklable object, given
        back by load_checkpoint. Frozen parameters (requires_grad False) go into the checkpoint
        too, for `zerorun ckpt consolidate` (unless exclude_frozen_parameters); a load leaves
        them as the model has them."""
        if not save_latest:
            raise ValueError("save_checkpoint(save_latest=False) is not supported yet: zerorun "
                             "always publishes <save_dir>/latest with the checkpoint")
        tag = str(tag) if tag is not None else f"global_step{self.global_steps}"
        state = checkpoint_state(self.global_steps, self._lr_steps, client_state,
                                 self.micro_steps)
        frozen = b""
        if self.global_rank == 0 and not exclude_frozen_parameters:
            named = [(n, p) for n, p in self.module.named_parameters() if not p.requires_grad]
            frozen = safetensors_io.dumps(named, {"format": "pt"}) if named else b""
        self._bridge.save_checkpoint(os.fspath(save_dir), tag, json.dumps(state), frozen)
        return True

    def load_deepspeed_checkpoint(self, load_dir, tag=None):
        """Goes on from a DeepSpeed ZeRO-1/2/3 checkpoint (save_checkpoint's directory, `latest`
        or `tag`): fp32 masters, Adam's state and the step, at any world size and stage (every
        rank calls it). Returns the step."""
        from zerorun.torch.deepspeed_ckpt import load_into

        return load_into(self, os.fspath(load_dir), tag)[0]

    def load_checkpoint(self, load_dir, tag=None, load_module_strict=True,
                        load_optimizer_states=True, load_lr_scheduler_states=True,
                        load_module_only=False):
        """Loads <load_dir>/<tag> (None: the one `latest` names) at any world size and ZeRO
        stage; returns (path, client_state), or (None, None) when there is no checkpoint, as
        DeepSpeed does. A DeepSpeed ZeRO checkpoint there (a run that trained on DeepSpeed's
        engine) loads as load_deepspeed_checkpoint, with its client_state."""
        if not load_optimizer_states or load_module_only:
            raise ValueError("load_checkpoint without the optimizer state is not supported yet: "
                             "load the whole checkpoint (the defaults)")
        load_dir = os.fspath(load_dir)
        if tag is None:
            latest = os.path.join(load_dir, "latest")
            if not os.path.isfile(latest):
                return None, None
            with open(latest) as f:
                tag = f.read().strip()
        where = os.path.join(load_dir, str(tag))
        if glob.glob(os.path.join(where, "zero_pp_rank_*_mp_rank_00_optim_states.pt")):
            from zerorun.torch.deepspeed_ckpt import load_into

            return where, load_into(self, load_dir, str(tag))[1]
        try:
            text = self._bridge.load_checkpoint(load_dir, str(tag))
        except FileNotFoundError:
            return None, None
        self._weights_changed()
        state = json.loads(text) if text else {}
        self.global_steps = state.get("global_steps", 0)
        self._lr_steps = state.get("lr_steps", self.global_steps)
        self.micro_steps = state.get("micro_steps",
                                     self.global_steps * self.gradient_accumulation_steps)
        client = state.get("client_state")
        return (os.path.join(load_dir, str(tag)),
                pickle.loads(base64.b64decode(client)) if client else {})


def checkpoint_state(global_steps, lr_steps, client_state, micro_steps=None):
    """What a checkpoint's manifest keeps as client_state for the engine: the step counters and
    the user's client_state (pickled). Without micro_steps a load takes global_steps x GA."""
    state = {"global_steps": global_steps, "lr_steps": lr_steps,
             "client_state": base64.b64encode(pickle.dumps(client_state or {})).decode()}
    if micro_steps is not None:
        state["micro_steps"] = micro_steps
    return state


def initialize(model=None, model_parameters=None, optimizer=None, lr_scheduler=None,
               config=None, config_params=None, training_data=None, collate_fn=None,
               init_fn=None, engine_class=None):
    """DeepSpeed's initialize: returns (engine, optimizer, dataloader, lr_scheduler).
    engine_class: an Engine subclass to make (the DeepSpeed-compatible surface's)."""
    if model is None:
        raise ValueError("zerorun.torch.initialize: model= is required")
    if lr_scheduler is not None and optimizer is None:
        raise ValueError("zerorun.torch.initialize: a torch lr_scheduler needs the torch "
                         "optimizer it schedules (optimizer=...), or use the config's "
                         "\"scheduler\" block")
    if callable(lr_scheduler) and not hasattr(lr_scheduler, "step"):
        lr_scheduler = lr_scheduler(optimizer)  # DeepSpeed accepts a scheduler factory.
    engine = (engine_class or Engine)(model, config if config is not None else config_params,
                    optimizer=optimizer, lr_scheduler=lr_scheduler,
                    model_parameters=model_parameters, init_fn=init_fn)
    loader = None
    if training_data is not None:
        # DeepSpeed's deepspeed_io: this rank's part of the data (DistributedSampler over the
        # data-parallel ranks, shuffled with seed 0) in micro batches of the config's size.
        sampler = torch.utils.data.distributed.DistributedSampler(
            training_data, num_replicas=engine.world_size, rank=engine.global_rank)
        loader = torch.utils.data.DataLoader(training_data, batch_size=engine.micro_batch,
                                             sampler=sampler, collate_fn=collate_fn)
    return engine, optimizer, loader, lr_scheduler


def _close_at_exit(ref):
    engine = ref()
    if engine is not None:
        engine.close()


def _unit_modules(model, units):
    """Per unit, the modules whose initialisation makes its parameters: a block's subtree; for
    the root's unit every module outside the blocks."""
    inside = set()
    out = []
    for _, module, _ in units:
        if module is not model:
            out.append(list(module.modules()))
            inside.update(id(m) for m in module.modules())
        else:
            out.append(None)
    rest = [m for m in model.modules() if id(m) not in inside]
    return [rest if o is None else o for o in out]


def _relative(unit, name):
    """A parameter's name inside its unit (the unit's prefix off, where it has it)."""
    return name[len(unit) + 1:] if unit and name.startswith(unit + ".") else name


def _tensors(value):
    """The tensors in a module's output (tensors, tuples, lists, dicts, HF ModelOutputs)."""
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []
