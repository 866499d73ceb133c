"""The torchvision zoo (tests/zoo.py): each spec equals torchvision's model of its name.

Default suite, for every model: the parameter count and MACs netc computes from the graph (no
build) against torchvision's model and its documented GFLOPS, and the state_dict keys, shapes
and order of the built module (both sides made on the meta device: nothing is allocated).
For the light models, also the outputs at a small second size, with torchvision's own random
weights loaded strictly (batch norm statistics measured, see zoo.calibrate_norms). Slow suite
(`--runslow`): the outputs at the reference's input size, and the heavy models' outputs.
"""
from __future__ import annotations

import shutil
from functools import cache

import pytest
import torch

import zoo
from zoo import ZOO

NAMES = sorted(ZOO)


def light_or_slow(names):
    return [n if ZOO[n].light else pytest.param(n, marks=pytest.mark.slow) for n in names]


pytestmark = pytest.mark.usefixtures("one_thread")


@cache
def structure(name: str):
    """(the compiled spec, torchvision's model made on the meta device), once per session."""
    return zoo.compiled(name), zoo.reference(name, "meta")


def test_every_zoo_spec_exists():
    assert sorted(p.stem for p in zoo.SPECS.glob("*.net") if p.stem in ZOO) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_torchvision(name):
    compiled, ref = structure(name)
    reference = sum(p.numel() for p in ref.parameters())
    assert zoo.static_params(compiled) == reference
    assert ZOO[name].params == reference  # the table's figure, used to sort light from heavy


@pytest.mark.parametrize("name", NAMES)
def test_macs_equal_torchvision_figure(name):
    """netc's MACs (from the graph, at the spec's declared input, its weights' size) equal the
    GFLOPS torchvision documents for its weights (`_ops`, which count multiply-adds), to the
    3 decimals it gives."""
    from netc.analysis import totals
    from refmodels import torchvision

    documented = torchvision().models.get_model_weights(name).DEFAULT.meta["_ops"]
    assert round(totals(zoo.compiled(name).graph).macs / 1e9, 3) == documented


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "swin_t", "swin_v2_t", "maxvit_t"])
def test_summary_buffer_bytes_equal_torchvision(name):
    """`netc summary`'s buffer memory counts each buffer at its dtype: BatchNorm's int64
    counter, Swin's and MaxViT's int64 relative-position indices, float32 tables."""
    from netc.analysis import analyse

    from refmodels import torchvision

    with torch.device("meta"):  # (sizes and dtypes only)
        reference = torchvision().models.get_model(name)
    expected = sum(b.numel() * b.element_size() for b in reference.buffers())
    assert analyse(zoo.compiled(name).graph, with_min_input=False).buffer_bytes == expected


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_equal_torchvision(name):
    compiled, ref = structure(name)
    theirs, ours = zoo.shapes(ref), zoo.shapes(zoo.lower(compiled, "meta"))
    assert sorted(set(ours) - set(theirs)) == [], "keys torchvision does not have"
    assert sorted(set(theirs) - set(ours)) == [], "torchvision keys we lack"
    assert ours == theirs
    assert list(ours) == list(theirs), "same keys, in another order"


def assert_outputs_equal(name: str, size: int):
    ref, mine = zoo.with_reference_weights(name)
    diff, scale, spread = zoo.compare(ref, mine, size)
    zoo.record(name, size, diff, scale, spread)
    assert diff <= zoo.RTOL * scale, f"max |difference| {diff:.3g} at {size} px, outputs up to {scale:.3g}"
    assert spread > 100 * zoo.RTOL * scale, "the reference's output hardly depends on its input"


@pytest.mark.parametrize("name", light_or_slow(NAMES))
def test_outputs_equal_torchvision_at_a_second_size(name):
    assert_outputs_equal(name, ZOO[name].second)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_outputs_equal_torchvision_at_reference_size(name):
    assert_outputs_equal(name, ZOO[name].size)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small"])
def test_training_mode_equals_torchvision_draw_for_draw(name):
    """In training mode (batch statistics, dropout, EfficientNet's stochastic depth) the same
    seed gives the same output, and another seed another one (so the draws are really used)."""
    ref, mine = zoo.with_reference_weights(name)
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    outputs = []
    for model, seed in ((ref, 1), (mine, 1), (mine, 2)):
        model.train()
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs.append(model(x))
    scale = outputs[0].abs().max().item()
    assert (outputs[1] - outputs[0]).abs().max().item() <= zoo.RTOL * scale
    assert (outputs[2] - outputs[1]).abs().max().item() > 100 * zoo.RTOL * scale


# (library, text, replacement, model): changes that keep the keys and shapes but not the function
MUTATIONS = {
    # the porting trap of issue 9: netc pads a 3x3 conv by 1 by default, PyTorch by 0
    "padding trap": ("squeezenet.net", "conv(64, 3, 2, 0)", "conv(64, 3, 2)", "squeezenet1_1"),
    # a BN eps of 1e-3 for torchvision's 1e-5 (seen because the norms' statistics are measured)
    "bn eps": ("mnasnet.net", "bn(momentum = 1 - 0.9997)", "bn(momentum = 1 - 0.9997, eps = 0.001)",
               "mnasnet0_5"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_comparison_catches_a_wrong_spec(mutation, tmp_path, monkeypatch):
    """Each mutated spec checks clean, has torchvision's keys and shapes and loads its
    weights strictly, but computes something else: the output comparison must see it."""
    library, text, replacement, name = MUTATIONS[mutation]
    shutil.copytree(zoo.SPECS / "lib", tmp_path / "lib")
    shutil.copy(zoo.SPECS / f"{name}.net", tmp_path)
    lib = tmp_path / "lib" / library
    assert text in lib.read_text()
    lib.write_text(lib.read_text().replace(text, replacement))
    monkeypatch.setattr(zoo, "SPECS", tmp_path)
    ref, mine = zoo.with_reference_weights(name)  # keys and shapes still fit
    diff, scale, _ = zoo.compare(ref, mine, ZOO[name].second)
    assert diff > 10 * zoo.RTOL * scale


def test_basic_block_refuses_groups_as_torchvision_does():
    """torchvision's BasicBlock raises for groups != 1 or base_width != 64; the spec's asserts."""
    import netc
    from refmodels import torchvision

    for kwargs in ({"groups": 32}, {"width_per_group": 128}):
        with pytest.raises(ValueError, match="BasicBlock only supports"):
            torchvision().models.resnet18(weights=None, **kwargs)
        diagnostics = netc.check(zoo.SPECS / "resnet18.net", **kwargs)
        assert [d.code for d in diagnostics] == ["E212"]
        assert "BasicBlock only supports groups=1" in diagnostics[0].message
