"""Shared fixtures: reference figures, and each spec built (and filled) once per session."""
from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
REFERENCE = Path(__file__).resolve().parent / "reference"

# spec file stem -> reference model name in tests/reference/models.json
PARITY = {
    "simple_cnn": "seed000_simplecnn",
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "resnet152": "resnet152",
    "resnext50_32x4d": "resnext50_32x4d",
    "wide_resnet50_2": "wide_resnet50_2",
    "densenet121": "densenet121",
    "densenet161": "densenet161",
    "densenet169": "densenet169",
    "densenet201": "densenet201",
    "densenet_bc_100": "seed003_densenet_bc_100",
    "vgg16_bn": "vgg16_bn",
    "mobilenet_v2": "mobilenet_v2",
    "googlenet": "googlenet",
    "nin": "nin",
    "seresnet18": "seresnet18",
    "seresnet50": "seresnet50",
    "skresnet18": "skresnet18",
    "skresnet34": "skresnet34",
    "skresnext50_32x4d": "skresnext50_32x4d",
    "resnest14d": "resnest14d",
    "resnest26d": "resnest26d",
    "resnest50d": "resnest50d",
    "senet18": "seed003_senet18",
    "sknet": "seed003_sknet",
}

# The heaviest models (seconds to a minute each to build, fill, run or script at full size):
# their full-size tests run in the slow suite (`pytest --runslow` or `-m slow`); the default
# suite checks their keys and params, and the same lowering on the smaller models.
HEAVY = {"resnet101", "resnet152", "densenet161", "densenet169", "densenet201", "resnest50d",
         "skresnext50_32x4d", "wide_resnet50_2", "resnext50_32x4d", "seresnet50", "vgg16_bn",
         # the torchvision zoo (tests/zoo.py): over 25M parameters, or slow to build or script
         "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg19", "vgg19_bn",
         "inception_v3", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"}


def with_slow(stems):
    """Parameters for `stems`, the heavy ones marked slow."""
    return [pytest.param(s, marks=pytest.mark.slow) if is_heavy(s) else s for s in stems]


# The torchvision zoo's specs (tests/zoo.py compares each with torchvision): in the default
# suite's whole-spec tests (TorchScript, runtime shapes) one light net per family stands for
# its family; the others run in the slow suite.
ZOO_DEFAULT = {"squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x0_5", "mnasnet0_5",
               "efficientnet_b0", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny", "swin_t"}


def is_heavy(stem: str) -> bool:
    """Whether a spec's whole-spec tests belong to the slow suite."""
    return stem in HEAVY or (stem not in PARITY and stem not in ZOO_DEFAULT)


# References whose state_dict keys are not names to reproduce (tests/reference/README.md:
# `nin` is a bare nn.Sequential, keys `0.0`, `0.2`, ...). Their specs choose readable names;
# the parity tests compare the state_dict entry by entry in order (shapes only), and the fill
# output with each entry filled under the reference's key at the same position.
KEYS_FREE = {"nin"}


@cache
def reference(name: str) -> dict:
    models = json.loads((REFERENCE / "models.json").read_text())
    return next(m for m in models if m["name"] == name)


@cache
def reference_keys(name: str) -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in (REFERENCE / "keys" / f"{name}.txt").read_text().splitlines():
        key, shape, _dtype = line.split("\t")
        keys[key] = tuple(json.loads(shape))
    return keys


class Built:
    """One spec compiled and lowered: the graph, the generated code and the live module."""

    def __init__(self, stem: str):
        import netc
        from netc.api import lower

        self.stem = stem
        self.compiled = netc.compile(SPECS / f"{stem}.net")
        assert self.compiled.ok, self.compiled.diagnostics
        self.graph = self.compiled.graph
        self.graph.check()  # structural invariants, as torch.fx's Graph.lint
        self.module, self.code = lower(self.compiled)
        self.module.eval()


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a test module: small tensors gain nothing from intra-op
    threads, which on a shared machine wait on each other (a 64 px ResNet-18 forward took a
    second instead of 40 ms). Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_BUILT: dict[str, Built] = {}
# Heavy nets kept alive at once: the slow suite builds every zoo model, and keeping them all
# peaked at 8.3 GB; the least recently used heavy one is dropped (and rebuilt if asked again).
HEAVY_KEPT = 3


@pytest.fixture(scope="session")
def built():
    """`built(stem)` -> Built, made at most once per session (the big ResNets are slow)."""
    def get(stem: str) -> Built:
        if stem not in _BUILT:
            _BUILT[stem] = Built(stem)
        _BUILT[stem] = _BUILT.pop(stem)  # most recently used last
        heavy = [name for name in _BUILT if is_heavy(name)]
        for name in heavy[:-HEAVY_KEPT]:
            del _BUILT[name]
        return _BUILT[stem]
    return get


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files from the current output")
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (skipped by default)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: heavy models or slow tools; skipped unless --runslow or -m selects them")


def pytest_collection_modifyitems(config, items):
    """`slow` tests are skipped unless `--runslow` is given or a `-m` expression names the
    marker (`-m slow` runs them, `-m "not slow"` deselects them as usual)."""
    if config.getoption("--runslow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (or -m slow)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)
