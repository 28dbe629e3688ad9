"""The safetensors format written without the safetensors package: an 8-byte little-endian header
length, a JSON header (name -> dtype, shape, data_offsets; "__metadata__" strings), then each
tensor's bytes in order. F32, BF16 and F16, what libzerorun's reader takes."""

import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


def _header(named, metadata):
    header, at = {}, 0
    for name, t in named:
        if t.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {t.dtype} is not float32, bfloat16 or float16")
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [at, at + n]}
        at += n
    header["__metadata__"] = {k: str(v) for k, v in (metadata or {}).items()}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype != torch.float32:
        t = t.view(torch.int16)  # numpy has no bfloat16: the bits as they are.
    return t.numpy().tobytes()


def write(path, named, metadata=None):
    """named: [(name, tensor)], written one tensor at a time (the order kept)."""
    with open(path, "wb") as f:
        f.write(_header(named, metadata))
        for _, t in named:
            f.write(_bytes(t))


def dumps(named, metadata=None):
    """named: [(name, tensor)] as the bytes of one safetensors file."""
    return _header(named, metadata) + b"".join(_bytes(t) for _, t in named)
