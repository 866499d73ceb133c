"""Each shipped spec equals its reference: params, MACs, state_dict keys and shapes, and
the output under the deterministic fill (rtol = atol = 1e-5, as the reference README says)."""
from __future__ import annotations

import pytest
import torch

from conftest import KEYS_FREE, PARITY, reference, reference_keys, with_slow
from fill import fill_, fill_input, fill_value
from netc.analysis import totals

SPECS = sorted(PARITY)
NAMED = sorted(set(PARITY) - KEYS_FREE)  # specs whose keys must be the reference's


def fill_by_position(module, ref_name: str):
    """Fill each state_dict entry as the fill rule fills the reference's entry at the same
    position (for KEYS_FREE specs, whose names differ but whose entries line up)."""
    state = module.state_dict()
    theirs = reference_keys(ref_name)
    assert [tuple(t.shape) for t in state.values()] == list(theirs.values())
    module.load_state_dict({
        key: fill_value(ref_key, tuple(t.shape), t.dtype) if t.is_floating_point() else t
        for (key, t), ref_key in zip(state.items(), theirs)})
    return module


@pytest.mark.parametrize("stem", SPECS)
def test_static_params_and_macs_equal_reference(stem, built):
    ref = reference(PARITY[stem])
    graph = built(stem).graph
    counted = totals(graph)
    assert counted.params == ref["params"]
    assert counted.buffers == ref["buffers"]
    assert counted.macs * 2 == ref["flops"]
    assert list(graph.node(graph.outputs[0]).shape) == ref["output_shape"][1:]


@pytest.mark.parametrize("stem", SPECS)
def test_module_params_equal_reference(stem, built):
    module = built(stem).module
    assert sum(p.numel() for p in module.parameters()) == reference(PARITY[stem])["params"]


@pytest.mark.parametrize("stem", NAMED)
def test_state_dict_keys_and_shapes_equal_reference(stem, built):
    module = built(stem).module
    ours = {key: tuple(t.shape) for key, t in module.state_dict().items()}
    theirs = reference_keys(PARITY[stem])
    assert sorted(set(ours) - set(theirs)) == [], "keys the reference does not have"
    assert sorted(set(theirs) - set(ours)) == [], "reference keys we lack"
    assert ours == theirs


@pytest.mark.parametrize("stem", NAMED)
def test_reference_checkpoint_loads_strictly(stem, built):
    """A checkpoint with the reference's keys and shapes loads with strict=True."""
    module = built(stem).module
    # The module's own tensors under the reference's names (zeros where a name or shape is
    # not ours, so that strict loading reports it): loading leaves the shared module as it
    # was, with no copy of the weights and no re-fill (seconds for VGG-16 or DenseNet-201).
    ours = module.state_dict()
    checkpoint = {key: ours[key] if key in ours and tuple(ours[key].shape) == shape
                  else torch.zeros(shape) for key, shape in reference_keys(PARITY[stem]).items()}
    module.load_state_dict(checkpoint, strict=True)


@pytest.mark.parametrize("stem", with_slow(SPECS))
def test_output_under_fill_equals_reference(stem, built):
    ref = reference(PARITY[stem])
    module = built(stem).module
    if stem in KEYS_FREE:
        fill_by_position(module, PARITY[stem])
    else:
        fill_(module)
    module.eval()
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            out = module(fill_input(ref["input_shape"]))
    finally:
        torch.set_num_threads(threads)
    expected = torch.tensor(ref["fill_output"]).reshape(ref["output_shape"])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert abs(out.double().sum().item() - ref["fill_output_sum"]) <= 2e-4


@pytest.mark.parametrize("stem", sorted(KEYS_FREE))
def test_keys_free_state_dict_lines_up_with_reference(stem, built):
    """Names are free, but entry by entry (in order) the shapes are the reference's."""
    module = fill_by_position(built(stem).module, PARITY[stem])
    assert len(module.state_dict()) == reference(PARITY[stem])["state_dict_entries"]


def test_fill_catches_a_wrong_batchnorm_eps(built):
    """The parity check can fail: the same resnet18 with BN eps 1e-3 misses the reference."""
    import netc
    from conftest import ROOT
    import shutil, tempfile, pathlib

    with tempfile.TemporaryDirectory() as tmp:
        lib = pathlib.Path(tmp) / "lib"
        shutil.copytree(ROOT / "specs" / "lib", lib)
        text = (lib / "resnet.net").read_text().replace("defaults conv(bias = false)",
                                                        "defaults conv(bias = false), bn(eps = 0.001)")
        (lib / "resnet.net").write_text(text)
        shutil.copy(ROOT / "specs" / "resnet18.net", tmp)
        module = fill_(netc.build(pathlib.Path(tmp) / "resnet18.net")).eval()
    ref = reference("resnet18")
    with torch.no_grad():
        out = module(fill_input(ref["input_shape"]))
    expected = torch.tensor(ref["fill_output"]).reshape(ref["output_shape"])
    with pytest.raises(AssertionError):
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
