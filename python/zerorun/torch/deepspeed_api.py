"""DeepSpeed's API over zerorun.torch: what `import deepspeed` gives a rank of `zerorun --engine
zerorun` (zerorun/compat/deepspeed re-exports these names). The calls HF Trainer, Accelerate and
Lightning make (../shared/reference/torch-bridge.md B1) behave as DeepSpeed 0.16's do; what is
not implemented fails at the call with NotSupported naming it and the way out (run without
--engine zerorun), never a silent difference.
"""

import atexit
import contextlib
import enum
import logging
import os
import weakref
from datetime import timedelta

import torch
import torch.distributed as dist

from zerorun.torch.engine import Engine, initialize as _initialize
from zerorun.torch.gathered import GatheredParameters
from zerorun.torch.zero_init import zero_init

logger = logging.getLogger("DeepSpeed")
VALID_LR_SCHEDULES = ["LRRangeTest", "OneCycle", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR"]


class NotSupported(NotImplementedError):
    """A DeepSpeed call or argument zerorun's engine does not implement."""

    def __init__(self, what, fix=""):
        super().__init__(f"{what} is not supported by zerorun's DeepSpeed-compatible engine "
                         f"(zerorun --engine zerorun){'; ' + fix if fix else ''}. Fix: "
                         "run without --engine zerorun to use DeepSpeed's own engine")


class ZeroParamStatus(enum.Enum):
    AVAILABLE = 1
    NOT_AVAILABLE = 2
    INFLIGHT = 3


class DeepSpeedOptimizer:
    """DeepSpeed's optimizer base class (isinstance checks)."""


class ZeroOptimizer(DeepSpeedOptimizer):
    """What initialize returns as the optimizer: the engine's AdamW, stepped by engine.step().
    step and zero_grad are no-ops, as DeepSpeed's are behind Accelerate's wrapper; `overflow`
    is whether the last step was skipped (fp16 loss scaling)."""

    def __init__(self, engine):
        self._engine = weakref.proxy(engine)

    @property
    def overflow(self):
        return bool(getattr(self._engine, "skipped", False))

    @property
    def loss_scale(self):
        return self._engine._bridge.loss_scale

    cur_scale = loss_scale

    @property
    def param_groups(self):
        e = self._engine
        params = [p for _, _, ps in e._units for _, p in ps]
        return [{"params": params, "lr": e.get_lr()[0]}]

    @property
    def state(self):
        return {}

    def step(self, closure=None):
        return None

    def zero_grad(self, set_to_none=True):
        return None

    def state_dict(self):
        return {"zerorun": "the optimizer state is in the engine's checkpoints (save_checkpoint)"}

    def load_state_dict(self, state_dict):
        return None


class ConfigScheduler:
    """The config's "scheduler" (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle), which the
    engine runs; this object reads it. get_last_lr() is the lr of the next step, as DeepSpeed's
    schedulers give it; step() is a no-op (engine.step() moves it)."""

    def __init__(self, engine, name):
        self._engine = weakref.proxy(engine)
        self.name = name

    def get_last_lr(self):
        return self._engine.get_lr()

    get_lr = get_last_lr

    @property
    def last_batch_iteration(self):
        return self._engine.global_steps - 1

    def step(self, *args, **kwargs):
        return None

    def state_dict(self):
        return {"last_batch_iteration": self.last_batch_iteration}

    def load_state_dict(self, state_dict):
        return None  # The step comes back with the engine's checkpoint.


class DeepSpeedEngine(Engine, torch.nn.Module):
    """DeepSpeed's engine (a torch.nn.Module wrapping the model) over zerorun.torch's Engine."""

    def __init__(self, model, config, **kwargs):
        torch.nn.Module.__init__(self)
        Engine.__init__(self, model, config=config, **kwargs)
        self._boundary = None  # set_gradient_accumulation_boundary's override.
        self.zero_optimizer = ZeroOptimizer(self)
        ds_id = 0
        for u, (_, _, ps) in enumerate(self._units):
            for _, p in ps:  # The attributes third-party code reads.
                p.ds_numel, p.ds_shape, p.ds_id = p.numel(), tuple(p.shape), ds_id
                ds_id += 1
            self._set_status(u)

    def _set_status(self, u):
        available = self.stage < 3 or self._resident[u]
        for _, p in self._units[u][2]:
            p.ds_status = ZeroParamStatus.AVAILABLE if available else \
                ZeroParamStatus.NOT_AVAILABLE

    def _gather(self, u, backward):
        super()._gather(u, backward)
        self._set_status(u)

    def _free(self, u):
        super()._free(u)
        self._set_status(u)

    def train(self, mode=True):
        torch.nn.Module.train(self, mode)
        return self

    def eval(self):
        return self.train(False)

    def backward(self, loss, retain_graph=False, scale_wrt_gas=True):
        """DeepSpeed's backward: the engine averages over the accumulation steps
        (scale_wrt_gas=True); with False the loss counts whole, as DeepSpeed's does."""
        if retain_graph:
            raise NotSupported("backward(retain_graph=True)")
        if not scale_wrt_gas:
            loss = loss * self.gradient_accumulation_steps
        return super().backward(loss)

    def set_gradient_accumulation_boundary(self, is_boundary):
        self._boundary = bool(is_boundary)

    def is_gradient_accumulation_boundary(self):
        if self._boundary is not None:
            return self._boundary
        return super().is_gradient_accumulation_boundary()

    def was_step_applied(self):
        return not getattr(self, "skipped", False)

    @property
    def skipped_steps(self):
        return int(getattr(self, "_skipped_total", 0))

    def step(self, lr_kwargs=None):
        before = self.global_steps
        super().step()
        if self.global_steps != before and getattr(self, "skipped", False):
            self._skipped_total = self.skipped_steps + 1

    def zero_optimization_stage(self):
        return self.stage

    def zero_optimization(self):
        return self.stage > 0

    def bfloat16_enabled(self):
        return self.dtype == torch.bfloat16

    def fp16_enabled(self):
        return self.dtype == torch.float16

    def train_micro_batch_size_per_gpu(self):
        return self.micro_batch

    def no_sync(self):
        """A context with no effect: each micro-step's gradients go into the engine's
        accumulator either way (HF Trainer 4.46 enters it with gradient accumulation, which
        DeepSpeed 0.16 refuses at ZeRO 2-3)."""
        return contextlib.nullcontext()

    def compile(self, *args, **kwargs):
        raise NotSupported("engine.compile()")

    # --- full weights --------------------------------------------------------------------
    def zero_gather_16bit_weights_on_model_save(self):
        zero = self._effective.get("zero_optimization", {})
        return bool(zero.get("stage3_gather_16bit_weights_on_model_save",
                             zero.get("stage3_gather_fp16_weights_on_model_save", False)))

    def _zero3_consolidated_16bit_state_dict(self, exclude_frozen_parameters=False):
        """The model's state_dict with every parameter whole in the working dtype, on rank 0
        ({} on the others); a collective at every stage."""
        full = {}  # id(param) -> whole value; every rank gathers the same ones in one order.
        for _, _, ps in self._units:
            for name, p in ps:
                full[id(p)] = self.full_tensor(name).to(self.dtype)
        if self.global_rank != 0:
            return {}
        out = {}
        for key, t in self.module.state_dict(keep_vars=True).items():
            if id(t) in full:
                out[key] = full[id(t)]
            elif not (exclude_frozen_parameters and isinstance(t, torch.nn.Parameter)):
                out[key] = t.detach().clone()
        return out

    def save_16bit_model(self, save_dir, save_filename="pytorch_model.bin",
                         exclude_frozen_parameters=False):
        state = self._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters)
        if self.global_rank == 0:
            os.makedirs(save_dir, exist_ok=True)
            torch.save(state, os.path.join(save_dir, save_filename))
        return True


def initialize(args=None, model=None, optimizer=None, model_parameters=None,
               training_data=None, lr_scheduler=None, distributed_port=None, mpu=None,
               dist_init_required=None, collate_fn=None, config=None, mesh_param=None,
               config_params=None):
    """DeepSpeed's initialize: (engine, optimizer, dataloader, lr_scheduler)."""
    if mpu is not None or mesh_param is not None:
        raise NotSupported("model parallelism (initialize(mpu=...) / mesh_param)")
    if config is None:
        config = config_params
    if config is None and args is not None:
        config = getattr(args, "deepspeed_config", None) or getattr(args, "deepspeed", None)
    if config is None:
        config = os.environ.get("ZERORUN_CONFIG")
    if isinstance(optimizer, type) or (callable(optimizer) and not hasattr(optimizer, "step")):
        raise NotSupported("an optimizer factory for initialize(optimizer=...)",
                           "hand it a torch AdamW or use the config's \"optimizer\" block")
    init_distributed()
    engine, torch_optimizer, loader, scheduler = _initialize(
        model=model, model_parameters=model_parameters, optimizer=optimizer,
        lr_scheduler=lr_scheduler, config=config, training_data=training_data,
        collate_fn=collate_fn, engine_class=DeepSpeedEngine)
    if scheduler is None and "scheduler" in engine._effective:
        scheduler = ConfigScheduler(engine, engine._effective["scheduler"].get("type"))
    engine.lr_scheduler_out = scheduler
    return engine, engine.zero_optimizer, loader, scheduler


def init_distributed(dist_backend=None, auto_mpi_discovery=True, distributed_port=29500,
                     verbose=True, timeout=timedelta(minutes=30), init_method=None,
                     dist_init_required=None, config=None, rank=-1, world_size=-1):
    """torch.distributed from the rank environment zerorun set (gloo on CPU ranks)."""
    if dist.is_initialized():
        return
    backend = dist_backend or "gloo"
    if backend not in ("gloo", "mpi") and not torch.cuda.is_available():
        backend = "gloo"  # DeepSpeed's CPU accelerator names "ccl"; these are gloo ranks.
    kwargs = {"backend": backend, "timeout": timeout, "init_method": init_method}
    if rank >= 0 and world_size > 0:
        kwargs.update(rank=rank, world_size=world_size)
    dist.init_process_group(**kwargs)
    # Torch leaves an undestroyed Gloo group's worker threads to interpreter finalization, where
    # they end the rank in std::terminate (SIGABRT after a finished job, now and then:
    # pytorch/pytorch#190489). The group made here goes first, before the interpreter does.
    atexit.register(_destroy_at_exit)


def _destroy_at_exit():
    if dist.is_initialized():
        dist.destroy_process_group()


class Init:
    """deepspeed.zero.Init: parameters made inside the block go straight to the meta device and
    are made one unit at a time at initialize (zerorun.torch.zero_init)."""

    def __init__(self, module=None, data_parallel_group=None, mem_efficient_linear=True,
                 remote_device=None, pin_memory=False, config_dict_or_path=None, config=None,
                 enabled=True, dtype=None, mpu=None, **kwargs):
        if module is not None:
            raise NotSupported("zero.Init(module=...) on a model already built",
                               "build the model inside `with deepspeed.zero.Init():`")
        self._context = zero_init() if enabled else None

    def __enter__(self):
        if self._context is not None:
            self._context.__enter__()
        return self

    def __exit__(self, *exc):
        if self._context is not None:
            return self._context.__exit__(*exc)
        return False


class DeepSpeedCPUAdam(torch.optim.AdamW):
    """deepspeed.ops.adam.DeepSpeedCPUAdam as a torch AdamW, whose hyper-parameters the engine
    takes (Accelerate builds it from the script's optimizer under offload)."""

    def __init__(self, model_params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999),
                 eps=1e-8, weight_decay=0, amsgrad=False, adamw_mode=True,
                 fp32_optimizer_states=True):
        if not adamw_mode or not bias_correction or amsgrad:
            raise NotSupported("DeepSpeedCPUAdam(adamw_mode=False / bias_correction=False / "
                               "amsgrad=True)", "the engine runs AdamW with bias correction")
        super().__init__(model_params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


FusedAdam = DeepSpeedCPUAdam


def clone_tensors_for_torch_save(item, device=torch.device("cpu")):
    """deepspeed.checkpoint.utils.clone_tensors_for_torch_save."""
    if torch.is_tensor(item):
        return item.detach().clone().to(device)
    if isinstance(item, list):
        return [clone_tensors_for_torch_save(v, device) for v in item]
    if isinstance(item, tuple):
        return tuple(clone_tensors_for_torch_save(v, device) for v in item)
    if isinstance(item, dict):
        return type(item)({k: clone_tensors_for_torch_save(v, device) for k, v in item.items()})
    return item


def not_supported(name, fix=""):
    """A function that raises NotSupported naming `name` when called."""

    def call(*args, **kwargs):
        raise NotSupported(name, fix)

    call.__name__ = name.rsplit(".", 1)[-1]
    return call


_LIGHTNING = ("lightning.pytorch.strategies.deepspeed", "pytorch_lightning.strategies.deepspeed",
              "lightning.fabric.strategies.deepspeed", "lightning_fabric.strategies.deepspeed")


def teach_lightning():
    """Lightning's DeepSpeedStrategy refuses anything but CUDA accelerators (its own check, in
    setup_environment): zerorun's engine runs CPU ranks, so under it a CPUAccelerator passes.
    Applied to the strategy modules already imported (Lightning imports deepspeed when a
    DeepSpeedStrategy is made)."""
    import sys

    for name in _LIGHTNING:
        cls = getattr(sys.modules.get(name), "DeepSpeedStrategy", None)
        if cls is None or getattr(cls.setup_environment, "_zerorun", False):
            continue
        original = cls.setup_environment

        def setup_environment(self, _cls=cls, _original=original):
            if type(self.accelerator).__name__ == "CPUAccelerator":
                return super(_cls, self).setup_environment()  # The check skipped.
            return _original(self)

        setup_environment._zerorun = True
        cls.setup_environment = setup_environment
        if hasattr(cls, "setup_distributed") and hasattr(cls, "_init_deepspeed_distributed"):
            original_distributed = cls.setup_distributed

            def setup_distributed(self, _original=original_distributed):
                # CPU devices have no index to match the local ranks against (Lightning's
                # _validate_device_index_selection): the rest of its setup, as it is.
                if type(self.accelerator).__name__ != "CPUAccelerator":
                    return _original(self)
                from lightning.fabric.utilities.seed import reset_seed

                reset_seed()
                self.set_world_ranks()
                self._init_deepspeed_distributed()

            cls.setup_distributed = setup_distributed
