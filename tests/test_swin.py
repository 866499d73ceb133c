"""Swin Transformer V1 and V2 (specs/lib/swin.net, ops `window_attention` and `patch_merge`
of netc/ops_window.py) against torchvision itself.

Each spec `specs/<name>.net` must equal `torchvision.models.<name>(weights=None)`: the
parameter count netc computes from the graph (no torch), the state_dict keys and shapes
(buffers included: `relative_position_index`, V2's `relative_coords_table`), and the outputs
in eval mode with the reference's own weights loaded strictly, at the reference's input size
(224; V2's weights are made at 256) and at a second size. The second sizes are chosen to
exercise what the window attention does at run time: at 160 px the stages are 40, 20, 10, 5
positions wide, so the 7x7 and 8x8 windows need padding, the shifted windows keep their
mask over padded maps, and the last stage is smaller than a window (no shift).

torchvision leaves every linear bias at zero, its layer norms at (1, 0) and the V2 key bias at
zero: the reference's parameters are perturbed first (the key bias too, which V2 must ignore
in its forward), so a bias or norm in the wrong place shows in the outputs.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import torch

import netc
from netc.analysis import totals
from refmodels import torchvision

SPECS = Path(__file__).resolve().parent.parent / "specs"
RTOL = 1e-4  # of the largest |output| of the reference

# name -> (reference input size, second size)
MODELS = {"swin_t": (224, 160), "swin_s": (224, 160), "swin_b": (224, 160),
          "swin_v2_t": (256, 224), "swin_v2_s": (256, 224), "swin_v2_b": (256, 224)}
# the ones whose 224 px comparison is quick enough for the default suite (about 10 s each)
LIGHT = {"swin_t", "swin_v2_t"}


pytestmark = pytest.mark.usefixtures("one_thread")


def reference(name: str, device: str = "cpu"):
    with torch.device(device):
        return getattr(torchvision().models, name)(weights=None).eval()


def ours(name: str, device: str = "cpu"):
    with torch.device(device):
        return netc.build(SPECS / f"{name}.net", limits={"memory": 1 << 40}).eval()


def shapes(module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(t.shape) for key, t in module.state_dict().items()}


@cache
def meta_shapes(name: str) -> tuple[dict, dict]:
    return shapes(reference(name, "meta")), shapes(ours(name, "meta"))


def with_reference_weights(name: str, seed: int = 0):
    """(reference, ours), ours holding the reference's parameters after a small perturbation
    of every one (torchvision's zero biases and unit norms hide misplaced ones)."""
    ref = reference(name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in ref.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    mine = ours(name, "meta")
    mine.load_state_dict(ref.state_dict(), strict=True, assign=True)
    return ref, mine.eval()


def output_difference(ref, mine, size: int) -> tuple[float, float]:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), mine(x)
    assert got.shape == expected.shape
    return (got - expected).abs().max().item(), expected.abs().max().item()


def sized(names, light=()):
    return [n if n in light else pytest.param(n, marks=pytest.mark.slow) for n in names]


# ---- structure: cheap, every model in the default suite

@pytest.mark.parametrize("name", sorted(MODELS))
def test_params_equal_torchvision(name):
    compiled = netc.compile(SPECS / f"{name}.net")
    assert compiled.ok, compiled.diagnostics
    ref = reference(name, "meta")
    assert totals(compiled.graph).params == sum(p.numel() for p in ref.parameters())
    assert totals(compiled.graph).buffers == sum(b.numel() for b in ref.buffers())


WEIGHTS = {"swin_t": "Swin_T_Weights", "swin_s": "Swin_S_Weights", "swin_b": "Swin_B_Weights",
           "swin_v2_t": "Swin_V2_T_Weights", "swin_v2_s": "Swin_V2_S_Weights",
           "swin_v2_b": "Swin_V2_B_Weights"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_macs_equal_torchvision_figure(name):
    """`netc summary`'s MACs at the reference size against the GFLOPS torchvision states for
    its weights (`_ops`, counted as multiply-adds, to 3 decimals)."""
    compiled = netc.compile(SPECS / f"{name}.net")
    weights = getattr(torchvision().models, WEIGHTS[name]).IMAGENET1K_V1
    assert round(totals(compiled.graph).macs / 1e9, 3) == pytest.approx(weights.meta["_ops"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_dict_keys_and_shapes_equal_torchvision(name):
    theirs, mine = meta_shapes(name)
    assert sorted(set(mine) - set(theirs)) == [], "keys torchvision does not have"
    assert sorted(set(theirs) - set(mine)) == [], "torchvision keys we lack"
    assert mine == theirs
    # torchvision lists PatchMerging's `reduction` before `norm`, and V2's `norm1` / `norm2`
    # before the attention / MLP they follow: swin.net writes those layers first
    assert list(mine) == list(theirs), "same keys, in another order"


@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])  # 7x7 and 8x8 windows
def test_buffers_equal_torchvision(name):
    """The position index and V2's coordinate table are computed, not loaded: ours must
    compute torchvision's values (a checkpoint holds them too, but a fresh model must not
    differ from a loaded one)."""
    torch.manual_seed(0)
    ref = reference(name)
    mine = ours(name)
    theirs = dict(ref.named_buffers())
    for key, value in mine.named_buffers():
        assert value.dtype == theirs[key].dtype, key
        torch.testing.assert_close(value, theirs[key], rtol=0, atol=0, msg=key)


# ---- outputs with torchvision's weights

@pytest.mark.parametrize("name", sized(sorted(MODELS), LIGHT))
def test_outputs_equal_torchvision_at_reference_size(name):
    ref, mine = with_reference_weights(name)
    diff, scale = output_difference(ref, mine, MODELS[name][0])
    assert diff <= RTOL * scale, f"max |difference| {diff:.3g}, outputs up to {scale:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_equal_torchvision_at_second_size(name):
    ref, mine = with_reference_weights(name)
    diff, scale = output_difference(ref, mine, MODELS[name][1])
    assert diff <= RTOL * scale, f"max |difference| {diff:.3g}, outputs up to {scale:.3g}"


@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])
def test_outputs_equal_torchvision_at_small_odd_sizes(name):
    """36 px: stages of 9, 5, 3 and 2 positions, so every patch merging pads an odd map and
    every stage is padded to whole windows; 4 px: one position from the stem on."""
    ref, mine = with_reference_weights(name)
    for size in (36, 4):
        diff, scale = output_difference(ref, mine, size)
        assert diff <= RTOL * scale, f"max |difference| {diff:.3g} at {size} px"


@pytest.mark.parametrize("version", [1, 2])
def test_window_attention_equals_torchvision_on_odd_maps(version, tmp_path):
    """The op alone against torchvision's attention module on maps that need padding, whose
    shift is dropped on one axis only (height 5 fits one 7-window, width 23 does not), in
    train mode with dropout off, and with the gradient of the input."""
    models = torchvision().models.swin_transformer
    cls = models.ShiftedWindowAttention if version == 1 else models.ShiftedWindowAttentionV2
    torch.manual_seed(0)
    ref = cls(48, [7, 7], [3, 3], 4)
    with torch.no_grad():
        for parameter in ref.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape))
    path = tmp_path / "op.net"
    path.write_text(f"net Op() {{\n  input x: [5, 23, 48]\n"
                    f"  out x >> attn: window_attention(4, 7, 3, {version})\n}}\n")
    mine = netc.build(path)
    mine.attn.load_state_dict(ref.state_dict(), strict=True)
    mine.train()
    ref.train()
    x = torch.randn(2, 5, 23, 48, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    expected, got = ref(x), mine(x2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    expected.square().sum().backward()
    got.square().sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-4, atol=1e-5)


def test_torchscript_equals_eager():
    from netc.load import script

    torch.manual_seed(0)
    module = ours("swin_v2_t")
    scripted = script(module)
    x = torch.randn(1, 3, 96, 96)  # padded windows, a shifted stage, one smaller than a window
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), module(x), rtol=0, atol=0)


@pytest.mark.slow
def test_torch_export_equals_eager_at_other_sizes():
    """netc's export (dynamic batch, height and width) at sizes where a different set of
    stages has its shift dropped than at the example size (224: the last stage; 96: the last
    two; 32: all but the first): a shift decided by a branch on the size was fixed at the
    example's branches and gave other outputs at 96, 64 and 32 px."""
    from netc.load import export_program

    torch.manual_seed(0)
    module = ours("swin_t")
    program = export_program(module, netc.compile(SPECS / "swin_t.net").graph)
    for size in (224, 96, 64, 32):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), module(x), rtol=1e-5, atol=1e-5)


# ---- static shapes and diagnostics of the new ops (no torch needed)

def check(source: str, tmp_path):
    path = tmp_path / "op.net"
    path.write_text(source)
    return netc.compile(path)


def net(body: str, shape="[3, 20, 20]") -> str:
    return f"net Op() {{\n  input x: {shape}\n  out x >> {body}\n}}\n"


@pytest.mark.parametrize("shape, expected", [([8, 7, 12], [4, 4, 48]), ([8, 8, 12], [4, 4, 48]),
                                             ([1, 1, 5], [1, 1, 20])])
def test_patch_merge_shape_rule(shape, expected, tmp_path):
    compiled = check(net("patch_merge", shape), tmp_path)
    assert compiled.ok, compiled.diagnostics
    assert list(compiled.graph.node(compiled.graph.outputs[0]).shape) == expected


def test_patch_merge_values(tmp_path):
    """Swin's order: (0,0), (1,0), (0,1), (1,1) offsets; an odd height padded with a zero row
    at the bottom, an even width not padded."""
    path = tmp_path / "merge.net"
    path.write_text(net("patch_merge", "[3, 4, 2]"))
    module = netc.build(path)
    x = torch.arange(24.0).reshape(1, 3, 4, 2)
    y = module(x)
    padded = torch.cat([x, torch.zeros(1, 1, 4, 2)], 1)
    manual = torch.cat([padded[:, 0::2, 0::2], padded[:, 1::2, 0::2], padded[:, 0::2, 1::2],
                        padded[:, 1::2, 1::2]], -1)
    assert tuple(y.shape) == (1, 2, 2, 8)
    torch.testing.assert_close(y, manual, rtol=0, atol=0)


@pytest.mark.parametrize("version, params, buffers", [
    (1, 3 * 48 * 48 + 3 * 48 + 48 * 48 + 48 + 13 * 13 * 4, 49 * 49),
    (2, 3 * 48 * 48 + 3 * 48 + 48 * 48 + 48 + 4 + 2 * 512 + 512 + 512 * 4, 49 * 49 + 13 * 13 * 2),
])
def test_window_attention_cost_matches_the_module(version, params, buffers, tmp_path):
    compiled = check(net(f"attn: window_attention(4, 7, 3, {version})", "[5, 23, 48]"), tmp_path)
    assert compiled.ok, compiled.diagnostics
    assert totals(compiled.graph).params == params
    path = tmp_path / "op.net"
    module = netc.build(path)
    assert sum(p.numel() for p in module.parameters()) == params
    assert sum(b.numel() for b in module.buffers()) == buffers


@pytest.mark.parametrize("body, shape, code", [
    ("window_attention(3, 7)", "[3, 20, 20]", "E309"),           # 3 heads, 20 channels
    ("window_attention(4, 7)", "[20, 20]", "E304"),               # not a map
    ("flatten >> window_attention(1, 7)", "[3, 20, 20]", "E304"),
    ("window_attention(2, 7, 7)", "[3, 20, 20]", "E308"),        # shift not below the window
    ("window_attention(2, [7, 4], [3, 4])", "[3, 20, 20]", "E308"),
    ("window_attention(2, 7, version = 3)", "[3, 20, 20]", "E308"),
    ("window_attention(2, 0)", "[3, 20, 20]", "E308"),
    ("window_attention(2, [1, 4], version = 2)", "[3, 20, 20]", "E308"),
    ("patch_merge", "[20, 20]", "E304"),
])
def test_diagnostics(body, shape, code, tmp_path):
    compiled = check(net(body, shape), tmp_path)
    assert not compiled.ok
    assert [d.code for d in compiled.diagnostics if d.is_error] == [code]


def test_check_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys, netc; r = netc.check(%r); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(r)") % str(SPECS / "swin_v2_t.net")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])
def test_training_mode_equals_torchvision(name):
    """In training, stochastic depth drops samples as torchvision's StochasticDepth does, with
    the same random draws in the same order: equal outputs from equal seeds (64 px: padded
    windows, a shifted stage, and stages smaller than a window)."""
    ref = reference(name)
    mine = ours(name, "meta")
    mine.load_state_dict(ref.state_dict(), strict=True, assign=True)
    ref.train()
    mine.train()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    outputs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = ref(x)
        torch.manual_seed(seed)
        got = mine(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        outputs.append(got)
    assert not torch.equal(outputs[0], outputs[1]), "stochastic depth drew nothing"
