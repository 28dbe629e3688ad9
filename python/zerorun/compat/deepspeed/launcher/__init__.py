"""deepspeed.launcher."""

from deepspeed.launcher import runner
