"""The fake Lightning Trainer: on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
after each batch, global_step counting optimizer steps, should_stop honoured."""


class Callback:
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pass


class Trainer:
    def __init__(self, callbacks=None, max_steps=10):
        self.callbacks = list(callbacks or [])
        self.global_step = 0
        self.should_stop = False
        self.max_steps = max_steps
        self.callback_metrics = {}

    def fit(self, model=None):
        for batch_idx in range(self.max_steps):
            self.global_step += 1
            outputs = {"loss": 3.0 / self.global_step}
            for c in self.callbacks:
                c.on_train_batch_end(self, model, outputs, None, batch_idx)
            if self.should_stop:
                break
