"""deepspeed.zero: Init (parameters made straight into shards) and GatheredParameters."""

from zerorun.torch.deepspeed_api import Init, ZeroParamStatus
from zerorun.torch.gathered import GatheredParameters
