"""deepspeed.comm: torch.distributed (gloo on zerorun's CPU ranks) under DeepSpeed's names."""

import torch.distributed as _dist

from zerorun.torch.deepspeed_api import init_distributed

ReduceOp = _dist.ReduceOp


def is_initialized():
    return _dist.is_initialized()


def get_rank(group=None):
    return _dist.get_rank(group) if _dist.is_initialized() else 0


def get_world_size(group=None):
    return _dist.get_world_size(group) if _dist.is_initialized() else 1


def get_local_rank():
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def __getattr__(name):  # barrier, all_reduce, broadcast, new_group, ...: torch's.
    return getattr(_dist, name)
