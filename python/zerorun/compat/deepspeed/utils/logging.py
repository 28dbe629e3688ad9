"""deepspeed.utils.logging."""

from zerorun.torch.deepspeed_api import logger
