"""deepspeed.checkpointing (activation checkpointing): not supported; torch's is."""

from zerorun.torch.deepspeed_api import not_supported

_FIX = "use torch.utils.checkpoint or model.gradient_checkpointing_enable()"
configure = not_supported("deepspeed.checkpointing.configure()", _FIX)
checkpoint = not_supported("deepspeed.checkpointing.checkpoint()", _FIX)
is_configured = lambda: False  # noqa: E731
