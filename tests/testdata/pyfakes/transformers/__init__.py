"""Fake transformers (see ../README): TrainerCallback, TrainerState, TrainerControl, Trainer."""
from transformers.trainer import Trainer, TrainerCallback, TrainerControl, TrainerState  # noqa
