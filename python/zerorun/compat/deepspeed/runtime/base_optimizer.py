"""deepspeed.runtime.base_optimizer."""

from zerorun.torch.deepspeed_api import DeepSpeedOptimizer, ZeroOptimizer
