"""zerorun status for HuggingFace Trainer: `Trainer(..., callbacks=[zerorun.hf.ZerorunCallback()])`,
or set ZERORUN_AUTO_CALLBACKS=1 and every Trainer gets one (zerorun._auto). A no-op outside
zerorun. The hooks are HF's documented TrainerCallback ones: on_train_begin, on_step_end and
on_log."""

import zerorun

try:
    from transformers import TrainerCallback as _Base
except ImportError:  # transformers missing: the class still exists (and does nothing).
    _Base = object


class ZerorunCallback(_Base):
    """Reports state.global_step at every step end and the logged loss/throughput at each log.
    A stop requested by zerorun (`zerorun stop`, Ctrl-C at the launcher, a failure elsewhere: a
    SIGTERM, see zerorun.stop_on_sigterm) ends training after the current step on every rank
    at once, and train() returns normally."""

    def on_train_begin(self, args, state, control, **kwargs):
        zerorun.stop_on_sigterm()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        stop = zerorun.report(step=state.global_step, total_steps=getattr(state, "max_steps", None))
        # Every rank decides together: HF calls on_step_end on every rank at every step.
        if zerorun.agree(stop):
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        # HF logs on every rank after on_step_end; the stop is decided at the next step end.
        logs = logs or {}
        loss = logs.get("loss", logs.get("train_loss"))
        rate = logs.get("train_tokens_per_second")
        zerorun.report(step=state.global_step, loss=loss, tokens_per_second=rate)
        return control
