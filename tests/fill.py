"""The reference figures' deterministic weight fill and input, written from the rule in
tests/reference/README.md (so the tests need nothing outside this repository)."""
from __future__ import annotations

import math
import zlib

import torch


def fill_value(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    count = math.prod(shape)
    phase = zlib.crc32(key.encode()) % 997
    v = torch.sin(torch.arange(count, dtype=torch.float64) * 0.618 + phase).reshape(shape)
    if key.endswith("running_var"):
        v = 1 + 0.5 * v.abs()
    elif key.endswith("running_mean") or key.endswith("bias"):
        v = 0.1 * v
    elif len(shape) == 1:  # a norm weight
        v = 1 + 0.1 * v
    else:  # conv / linear weight, scaled by fan-in
        v = v * math.sqrt(3.0 / (count // shape[0]))
    return v.to(dtype)


def fill_(model: torch.nn.Module) -> torch.nn.Module:
    state = {key: fill_value(key, tuple(t.shape), t.dtype) if t.is_floating_point() else t
             for key, t in model.state_dict().items()}
    model.load_state_dict(state)
    return model


def fill_input(shape) -> torch.Tensor:
    count = math.prod(shape)
    return torch.sin(torch.arange(count, dtype=torch.float64) * 0.1).reshape(shape).float()
