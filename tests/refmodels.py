"""The reference models themselves (torchvision, timm), for comparing built modules with them.

The torchvision 0.28.0 wheel on PyPI is a CUDA build: beside torch 2.13.0+cpu its compiled
detection ops (`torchvision::nms`, ...) cannot load, and `import torchvision` fails while
registering fake kernels for them. Classification models never call those ops, so we declare
the two schemas torchvision's `_meta_registrations` looks up before importing it; any real
call of them would still fail loudly ("no kernel").
"""
from __future__ import annotations

import importlib
from functools import cache

import pytest


@cache
def torchvision():
    torch = pytest.importorskip("torch")
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    library = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARIES.append(library)  # a Library is unregistered when collected
    import sys
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    return importlib.import_module("torchvision")


_LIBRARIES: list = []

# constructor arguments of the references (models.json `built_with`), beyond `weights=None`
TORCHVISION_KWARGS = {"googlenet": {"aux_logits": False, "init_weights": True,
                                    "transform_input": False}}


@cache
def timm():
    torchvision()
    return pytest.importorskip("timm")


def reference_model(entry: dict):
    """The reference model of a tests/reference/models.json entry, random init."""
    source, name = entry["source"], entry["name"]
    if source == "torchvision":
        return getattr(torchvision().models, name)(weights=None, **TORCHVISION_KWARGS.get(name, {}))
    if source == "timm":
        return timm().create_model(name, pretrained=False)
    raise ValueError(f"{name}: no importable reference ({source})")
