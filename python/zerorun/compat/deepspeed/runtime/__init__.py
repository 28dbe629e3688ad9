"""deepspeed.runtime: the engine, DeepSpeed's optimizer base class and the scheduler names."""

from zerorun.torch.deepspeed_api import DeepSpeedOptimizer

from deepspeed.runtime import base_optimizer, engine, lr_schedules, zero
