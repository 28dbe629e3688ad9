"""deepspeed.accelerator: get_accelerator() is not supported (zerorun's ranks are CPU ranks)."""

from zerorun.torch.deepspeed_api import not_supported

get_accelerator = not_supported("deepspeed.accelerator.get_accelerator()")
