"""deepspeed.ops.adam: DeepSpeedCPUAdam / FusedAdam as torch AdamW, run by the engine's AdamW."""

from zerorun.torch.deepspeed_api import DeepSpeedCPUAdam, FusedAdam
