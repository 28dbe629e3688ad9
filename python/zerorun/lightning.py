"""zerorun status for PyTorch Lightning: `Trainer(callbacks=[zerorun.lightning.ZerorunCallback()])`,
or ZERORUN_AUTO_CALLBACKS=1 (zerorun._auto). A no-op outside zerorun. The hook is Lightning's
documented Callback.on_train_start and on_train_batch_end(trainer, pl_module, outputs, batch,
batch_idx)."""

import zerorun

_Base = object
for _module in ("lightning.pytorch", "pytorch_lightning"):
    try:
        _Base = __import__(_module, fromlist=["Callback"]).Callback
        break
    except ImportError:
        continue


def _loss(outputs, trainer):
    """The step's loss: outputs["loss"] (or a bare tensor), else the logged train_loss/loss."""
    value = outputs.get("loss") if isinstance(outputs, dict) else outputs
    if value is None:
        metrics = getattr(trainer, "callback_metrics", {}) or {}
        value = metrics.get("train_loss", metrics.get("loss"))
    try:
        return float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None


class ZerorunCallback(_Base):
    """Reports trainer.global_step and the batch loss after every training batch. A stop
    requested by zerorun (`zerorun stop`, Ctrl-C at the launcher, a failure elsewhere: a SIGTERM,
    see zerorun.stop_on_sigterm, which replaces Lightning's own SIGTERM handler for the run) sets
    trainer.should_stop on every rank after the same batch, and fit() returns normally."""

    def on_train_start(self, trainer, pl_module):
        zerorun.stop_on_sigterm()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        total = getattr(trainer, "max_steps", None)
        stop = zerorun.report(step=trainer.global_step, loss=_loss(outputs, trainer),
                              total_steps=total if total and total > 0 else None)
        if zerorun.agree(stop):  # Lightning calls this hook on every rank at every batch.
            trainer.should_stop = True
