"""deepspeed.checkpoint."""

from deepspeed.checkpoint import utils
