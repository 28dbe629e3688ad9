"""ZERORUN_AUTO_CALLBACKS=1: every HF Trainer and Lightning Trainer made in this process gets
zerorun's callback, without changing the training script. Loaded at interpreter start by the
zerorun_auto.pth file the package installs; does nothing unless the variable is set inside a
zerorun rank. The trainers are patched when their modules are first imported."""

import importlib.abc
import importlib.machinery
import os
import sys

_TARGETS = {
    "transformers.trainer": ("Trainer", "zerorun.hf"),
    "lightning.pytorch.trainer.trainer": ("Trainer", "zerorun.lightning"),
    "pytorch_lightning.trainer.trainer": ("Trainer", "zerorun.lightning"),
}


def _patch(module, class_name, callback_module):
    trainer = getattr(module, class_name, None)
    if trainer is None or getattr(trainer, "_zerorun_patched", False):
        return
    original = trainer.__init__

    def __init__(self, *args, **kwargs):
        from importlib import import_module

        callback = import_module(callback_module).ZerorunCallback
        callbacks = list(kwargs.get("callbacks") or [])
        if not any(isinstance(c, callback) for c in callbacks):
            callbacks.append(callback())
        kwargs["callbacks"] = callbacks
        original(self, *args, **kwargs)

    trainer.__init__ = __init__
    trainer._zerorun_patched = True


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                class_name, callback_module = _TARGETS[name]
                exec_module = loader.exec_module

                def patched_exec(module, _exec=exec_module):
                    _exec(module)
                    _patch(module, class_name, callback_module)

                loader.exec_module = patched_exec
                return spec
        return None


def install():
    """Patches the trainers already imported and those imported later."""
    for name, (class_name, callback_module) in _TARGETS.items():
        if name in sys.modules:
            _patch(sys.modules[name], class_name, callback_module)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


if os.environ.get("ZERORUN_AUTO_CALLBACKS") == "1" and os.environ.get("ZERORUN_COORDINATOR"):
    install()
