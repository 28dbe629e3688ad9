"""zerorun.torch: libzerorun as the ZeRO engine of a PyTorch model.

    engine, optimizer, _, scheduler = zerorun.torch.initialize(model=model, config="ds.json")
    loss = engine(batch)            # the model's forward
    engine.backward(loss)
    engine.step()                   # the optimizer step at each accumulation boundary

The model's trainable parameters live in libzerorun's partitioned buffers (torch tensors are
zero-copy views of them), gradients are handed to the engine per unit as backward produces
them, and the optimizer (AdamW on the CPU), clipping, loss scaling and ZeRO's collectives run in
C++. See zerorun/torch/engine.py for the engine and what is not supported yet.
"""

from zerorun.torch.engine import Engine, initialize
from zerorun.torch.gathered import GatheredParameters
from zerorun.torch.units import default_units
from zerorun.torch.zero_init import zero_init

__all__ = ["Engine", "GatheredParameters", "initialize", "default_units", "zero_init"]
