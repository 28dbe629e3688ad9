"""deepspeed.runtime.lr_schedules: the names of the config's schedulers, which the engine runs
from the config's "scheduler" block (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle);
building one by hand is not supported."""

from zerorun.torch.deepspeed_api import VALID_LR_SCHEDULES, not_supported

_FIX = "name it in the config's \"scheduler\" block, or use a torch lr_scheduler"
WarmupLR = not_supported("deepspeed.runtime.lr_schedules.WarmupLR()", _FIX)
WarmupDecayLR = not_supported("deepspeed.runtime.lr_schedules.WarmupDecayLR()", _FIX)
WarmupCosineLR = not_supported("deepspeed.runtime.lr_schedules.WarmupCosineLR()", _FIX)
OneCycle = not_supported("deepspeed.runtime.lr_schedules.OneCycle()", _FIX)
LRRangeTest = not_supported("deepspeed.runtime.lr_schedules.LRRangeTest()", _FIX)
