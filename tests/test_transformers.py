"""ViT, ConvNeXt and MaxViT specs equal torchvision's models: parameters, state_dict keys,
shapes and order, and outputs with torchvision's own random weights loaded `strict=True`
(every parameter shifted by 0.02 * randn first: torchvision zero-initialises ViT's head, so
unperturbed outputs would be trivially equal), at the reference size and at a second size.
(Swin: tests/test_swin.py; the CNN families: tests/test_zoo.py.)"""
from __future__ import annotations

import pytest
import torch

import netc
from conftest import SPECS
from refmodels import torchvision

# name: (family, reference size, second size)
MODELS = {
    "vit_b_16": ("vit", 224, 96), "vit_b_32": ("vit", 224, 96), "vit_l_16": ("vit", 224, 64),
    "vit_l_32": ("vit", 224, 64), "vit_h_14": ("vit", 224, 56),
    "convnext_tiny": ("convnext", 224, 64), "convnext_small": ("convnext", 224, 64),
    "convnext_base": ("convnext", 224, 64), "convnext_large": ("convnext", 224, 64),
    "maxvit_t": ("maxvit", 224, 448),
}
# the default suite compares outputs of these at their second size; the rest are slow
LIGHT = {"vit_b_32", "convnext_tiny"}


def reference(name: str, size: int, device: str = "cpu"):
    family = MODELS[name][0]
    kwargs = {"vit": {"image_size": size}, "maxvit": {"input_size": (size, size)}}.get(family, {})
    with torch.device(device):
        return getattr(torchvision().models, name)(weights=None, **kwargs).eval()


def ours(name: str, size: int, device: str = "cpu"):
    family = MODELS[name][0]
    with torch.device(device):
        if family == "convnext":
            return netc.build(SPECS / f"{name}.net", input_shape=(3, size, size),
                              limits={"memory": 1 << 40}).eval()
        return netc.build(SPECS / f"{name}.net", image_size=size,
                          limits={"memory": 1 << 40}).eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keys_shapes_and_params_equal_torchvision(name):
    size = MODELS[name][1]
    ref, mine = reference(name, size, "meta"), ours(name, size, "meta")
    assert [(k, tuple(v.shape)) for k, v in mine.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert sum(p.numel() for p in mine.parameters()) == sum(p.numel() for p in ref.parameters())


def assert_outputs_equal(name: str, size: int) -> None:
    torch.manual_seed(0)
    ref = reference(name, size)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    mine = ours(name, size)
    mine.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, got = ref(x), mine(x)
    scale = expected.abs().max().item()
    assert scale > 0 and (expected[0] - expected[1]).abs().max() > 1e-3 * scale
    assert (got - expected).abs().max().item() <= 1e-4 * scale


@pytest.mark.parametrize("name", [n if n in LIGHT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(MODELS)])
def test_outputs_equal_torchvision_at_a_second_size(name):
    assert_outputs_equal(name, MODELS[name][2])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_equal_torchvision_at_reference_size(name):
    assert_outputs_equal(name, MODELS[name][1])
