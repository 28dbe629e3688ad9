"""deepspeed.runtime.engine."""

from zerorun.torch.deepspeed_api import DeepSpeedEngine
