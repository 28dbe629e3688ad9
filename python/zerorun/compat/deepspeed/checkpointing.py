"""deepspeed.checkpointing (activation checkpointing): checkpoint() is torch's reentrant
checkpoint (recompute in backward, RNG state kept); configure() accepts a configuration that
turns none of DeepSpeed's own options on (what Lightning passes by default) and refuses one that
does (partitioned, contiguous or CPU activations), naming it."""

import torch.utils.checkpoint

from zerorun.torch.deepspeed_api import NotSupported

_configured = False


def configure(mpu_=None, deepspeed_config=None, partition_activations=None,
              contiguous_checkpointing=None, num_checkpoints=None, checkpoint_in_cpu=None,
              synchronize=None, profile=None):
    global _configured
    if mpu_ is not None:
        raise NotSupported("deepspeed.checkpointing.configure(mpu_=...) (model parallelism)")
    for name, value in (("partition_activations", partition_activations),
                        ("contiguous_checkpointing", contiguous_checkpointing),
                        ("checkpoint_in_cpu", checkpoint_in_cpu)):
        if value:
            raise NotSupported(f"deepspeed.checkpointing.configure({name}=True)",
                               "activation checkpointing here is torch's (recompute in backward)")
    _configured = True


def is_configured():
    return _configured


def checkpoint(function, *args):
    return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=True)
