"""Every generated module is accepted by torch.jit.script (and gives the eager output), and
small ones by torch.export, the successor of TorchScript."""
from __future__ import annotations

import pytest
import torch

from conftest import SPECS, with_slow
from netc.load import script

ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.net"))


@pytest.mark.parametrize("stem", with_slow(ALL_SPECS))
def test_torch_jit_script_accepts_every_spec(stem, built):
    item = built(stem)
    module = item.module.eval()
    scripted = script(module)
    inputs = [torch.randn(1, *i.shape) for i in item.graph.inputs]
    with torch.no_grad():
        torch.testing.assert_close(scripted(*inputs), module(*inputs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stem", ["simple_cnn"])
def test_torch_export_accepts_generated_modules(stem, built):
    item = built(stem)
    module = item.module.eval()
    inputs = tuple(torch.randn(1, *i.shape) for i in item.graph.inputs)
    exported = torch.export.export(module, inputs)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*inputs), module(*inputs))
