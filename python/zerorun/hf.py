"""zerorun status for HuggingFace Trainer: `Trainer(..., callbacks=[zerorun.hf.ZerorunCallback()])`,
or set ZERORUN_AUTO_CALLBACKS=1 and every Trainer gets one (zerorun._auto). A no-op outside
zerorun. The hooks are HF's documented TrainerCallback ones: on_step_end and on_log."""

import zerorun

try:
    from transformers import TrainerCallback as _Base
except ImportError:  # transformers missing: the class still exists (and does nothing).
    _Base = object


class ZerorunCallback(_Base):
    """Reports state.global_step at every step end and the logged loss/throughput at each log;
    a stop requested by zerorun (zerorun stop, a failure elsewhere) stops training cleanly."""

    def on_step_end(self, args, state, control, **kwargs):
        if zerorun.report(step=state.global_step, total_steps=getattr(state, "max_steps", None)):
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        loss = logs.get("loss", logs.get("train_loss"))
        rate = logs.get("train_tokens_per_second")
        if zerorun.report(step=state.global_step, loss=loss, tokens_per_second=rate):
            control.should_training_stop = True
        return control
