"""Fake lightning.pytorch: Callback and Trainer."""
from lightning.pytorch.trainer.trainer import Callback, Trainer  # noqa
