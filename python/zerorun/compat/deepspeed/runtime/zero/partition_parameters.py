"""deepspeed.runtime.zero.partition_parameters: ZeroParamStatus (a parameter's ds_status)."""

from zerorun.torch.deepspeed_api import Init, ZeroParamStatus
from zerorun.torch.gathered import GatheredParameters
