"""deepspeed.runtime.zero."""

from zerorun.torch.deepspeed_api import Init
from zerorun.torch.gathered import GatheredParameters

from deepspeed.runtime.zero import partition_parameters
