"""deepspeed.utils: the logger; set_z3_leaf_modules is not supported."""

from zerorun.torch.deepspeed_api import logger, not_supported

from deepspeed.utils import logging

set_z3_leaf_modules = not_supported("deepspeed.utils.set_z3_leaf_modules() (MoE leaf modules)")
