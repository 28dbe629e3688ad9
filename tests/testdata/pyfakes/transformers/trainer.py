"""The fake Trainer: calls on_step_end every step and on_log every logging_steps, as HF does."""


class TrainerCallback:
    def on_step_end(self, args, state, control, **kwargs):
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        return control


class TrainerState:
    def __init__(self):
        self.global_step = 0
        self.max_steps = 0


class TrainerControl:
    def __init__(self):
        self.should_training_stop = False


class Trainer:
    def __init__(self, model=None, args=None, callbacks=None, max_steps=10, logging_steps=2):
        self.callbacks = list(callbacks or [])
        self.state = TrainerState()
        self.state.max_steps = max_steps
        self.control = TrainerControl()
        self.max_steps = max_steps
        self.logging_steps = logging_steps

    def train(self):
        for step in range(1, self.max_steps + 1):
            self.state.global_step = step
            for c in self.callbacks:
                self.control = c.on_step_end(None, self.state, self.control) or self.control
            if step % self.logging_steps == 0:
                logs = {"loss": 2.0 / step, "learning_rate": 1e-4, "epoch": 0.1 * step}
                for c in self.callbacks:
                    self.control = c.on_log(None, self.state, self.control, logs=logs) or self.control
            if self.control.should_training_stop:
                break
