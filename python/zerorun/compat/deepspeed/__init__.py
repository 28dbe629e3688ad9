"""`deepspeed` as zerorun --engine zerorun gives it: DeepSpeed 0.16's API backed by zerorun.torch
(zerorun/torch/deepspeed_api.py). Only on the path of such ranks (zerorun.engine_run puts it
there); a real DeepSpeed installed beside it is untouched. A submodule or name this surface does
not have fails at the import or the attribute, naming it and the way out."""

import importlib.abc
import sys

from zerorun.torch.deepspeed_api import (DeepSpeedEngine, NotSupported, init_distributed,
                                         initialize, teach_lightning)

from deepspeed import (accelerator, checkpoint, checkpointing, comm, launcher, ops, runtime,
                       utils, zero)

__version__ = "0.16.1+zerorun"
__version_major__, __version_minor__, __version_patch__ = 0, 16, 1
__git_hash__ = "zerorun"
__git_branch__ = "zerorun"
ZERORUN_ENGINE = True


def add_config_arguments(parser):
    """DeepSpeed's --deepspeed / --deepspeed_config arguments on an argparse parser."""
    group = parser.add_argument_group("DeepSpeed", "DeepSpeed configurations")
    group.add_argument("--deepspeed", default=False, action="store_true")
    group.add_argument("--deepspeed_config", default=None, type=str)
    return parser


def __getattr__(name):
    raise AttributeError(f"deepspeed.{name} is not part of zerorun's DeepSpeed-compatible "
                         "surface (zerorun --engine zerorun). Fix: run without --engine zerorun "
                         "to use DeepSpeed's own engine")


class _Missing(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: a deepspeed.* module nothing else found is named in the error."""

    def find_spec(self, name, path, target=None):
        if name.startswith("deepspeed."):
            raise ModuleNotFoundError(
                f"No module named {name!r}: not part of zerorun's DeepSpeed-compatible surface "
                "(zerorun --engine zerorun). Fix: run without --engine zerorun to use "
                "DeepSpeed's own engine", name=name)
        return None


if not any(isinstance(f, _Missing) for f in sys.meta_path):
    sys.meta_path.append(_Missing())
teach_lightning()
