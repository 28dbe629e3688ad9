"""deepspeed.checkpoint.utils."""

from zerorun.torch.deepspeed_api import clone_tensors_for_torch_save
