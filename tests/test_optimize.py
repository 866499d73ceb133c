"""`netc build --optimize` (netc/optimize.py) against the plain lowering, in eval mode: every
shipped spec with all passes, each pass alone and each switched off, every artifact format,
and the folded state_dict. BatchNorm statistics and affine parameters are randomised first:
a fresh BatchNorm is the identity, and folding it would prove nothing.

The heavy specs (conftest.HEAVY) run in the slow suite; `-m slow` runs them.
"""
from __future__ import annotations

import copy
import textwrap

import pytest
import torch

import netc
from conftest import PARITY, SPECS, is_heavy, with_slow
from netc import optimize as O
from netc.analysis import min_input_size
from netc.cli import main

RTOL = 1e-4
# a small input for the nets that take any size (the heavy ones take a minute at 224)
SMALL = 64
# the nets that run every pass alone and every pass switched off in the default suite:
# residual, depthwise with relu6, dense concatenation, inception branches, SE gates, sizes
# pinned by a linear layer
VARIANT_SPECS = ["resnet18", "mobilenet_v2", "densenet_bc_100", "googlenet", "seresnet18",
                 "simple_cnn"]


def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy whose BatchNorms are far from the identity (and whose biases are not zero)."""
    module = copy.deepcopy(module).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                c = layer.num_features
                layer.running_mean.copy_(torch.rand(c, generator=generator) - 0.5)
                layer.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                if layer.affine:
                    layer.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                    layer.bias.copy_(torch.rand(c, generator=generator) - 0.5)
    return module


def example(graph, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Batch 2 at a small size where the net takes any size, else at its declared size."""
    sizes = min_input_size(graph)
    small = sizes is not None and sizes.any_size
    generator = torch.Generator().manual_seed(seed)
    shapes = [(i.shape[0], max(SMALL, sizes.shape[1]), max(SMALL, sizes.shape[2]))
              if small and len(i.shape) == 3 else i.shape for i in graph.inputs]
    return tuple(torch.randn(2, *shape, generator=generator) for shape in shapes)


def assert_close(actual, expected) -> None:
    """Within rtol of the output's scale (elementwise rtol would judge values near 0)."""
    actual = actual if isinstance(actual, tuple) else (actual,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        scale = e.abs().max().clamp_min(1e-6)
        error = float((a - e).abs().max() / scale)
        assert error <= RTOL, f"relative error {error:.3g} > {RTOL}"


_PLAIN: dict[str, tuple] = {}


def plain(built, stem: str):
    """(graph, plain module with randomised BatchNorms, inputs, its outputs), once per spec."""
    if stem not in _PLAIN:
        b = built(stem)
        module = randomised(b.module)
        inputs = example(b.graph)
        with torch.no_grad():
            _PLAIN[stem] = (b.graph, module, inputs, module(*inputs))
        for name in [name for name in _PLAIN if is_heavy(name) and name != stem]:
            del _PLAIN[name]  # (one heavy net at a time: the slow suite builds the whole zoo)
    return _PLAIN[stem]


def optimised_output(built, stem: str, passes):
    graph, module, inputs, expected = plain(built, stem)
    optimised, code, opt = O.lower(graph, module, passes, stem)
    with torch.no_grad():
        return optimised(*inputs), expected, opt


# every shipped spec: the 27 of the first round and the torchvision zoo
ALL_STEMS = sorted(path.stem for path in SPECS.glob("*.net"))


@pytest.mark.parametrize("stem", with_slow(ALL_STEMS))
def test_every_spec_optimised_equals_plain(built, stem):
    actual, expected, opt = optimised_output(built, stem, O.PASS_NAMES)
    assert_close(actual, expected)
    assert opt.passes == O.PASS_NAMES


@pytest.mark.parametrize("name", O.PASS_NAMES)
@pytest.mark.parametrize("stem", VARIANT_SPECS)
@pytest.mark.parametrize("alone", [True, False], ids=["alone", "off"])
def test_each_pass_alone_and_switched_off(built, stem, name, alone):
    passes = (name,) if alone else tuple(p for p in O.PASS_NAMES if p != name)
    actual, expected, opt = optimised_output(built, stem, passes)
    assert_close(actual, expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", O.PASS_NAMES)
@pytest.mark.parametrize("stem", sorted(set(PARITY) - set(VARIANT_SPECS)))
@pytest.mark.parametrize("alone", [True, False], ids=["alone", "off"])
def test_each_pass_alone_and_switched_off_everywhere(built, stem, name, alone):
    passes = (name,) if alone else tuple(p for p in O.PASS_NAMES if p != name)
    actual, expected, _ = optimised_output(built, stem, passes)
    assert_close(actual, expected)


# ---- what each pass does to the graph

def test_passes_change_the_graph_as_documented(built):
    graph = built("mobilenet_v2").graph
    ops = lambda g: [n.op for n in g]  # noqa: E731
    assert "dropout" in ops(graph) and "bn" in ops(graph)
    assert "dropout" not in ops(O.optimize(graph, ["drop_dropout_identity"]).graph)
    folded = O.optimize(graph, ["fold_batchnorm"])
    assert "bn" not in ops(folded.graph) and len(folded.folds) == ops(graph).count("bn")
    fused = O.optimize(graph, ["fold_batchnorm", "fuse_conv_activation"]).graph
    assert "relu6" not in ops(fused) and "conv_act" in ops(fused)
    # without folding, a conv is read by its BatchNorm: nothing to fuse
    assert "conv_act" not in ops(O.optimize(graph, ["fuse_conv_activation"]).graph)
    assert ops(graph) == ops(O.optimize(graph, ()).graph)  # the input graph is not changed


def test_channels_last_converts_the_image_once(built):
    graph, module, inputs, _ = plain(built, "resnet18")
    optimised, code, opt = O.lower(graph, module, ["channels_last"], "resnet18")
    assert code.src.count("memory_format=torch.channels_last") == 1
    assert optimised.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_optimised_state_dict_holds_the_folded_weights(built):
    graph, module, inputs, _ = plain(built, "resnet18")
    optimised, _, opt = O.lower(graph, module, O.PASS_NAMES, "resnet18")
    keys = set(optimised.state_dict())
    assert not any(".bn" in key or key.startswith("bn") for key in keys)
    assert {"conv1.weight", "conv1.bias", "layer1.0.conv1.bias"} <= keys
    folded = O.fold_state_dict(module.state_dict(), opt.folds)
    assert set(folded) == keys
    for key, value in folded.items():
        assert torch.equal(optimised.state_dict()[key], value)
    # a fold by hand: conv1 then bn1 on the plain module
    scale = module.bn1.weight / torch.sqrt(module.bn1.running_var + module.bn1.eps)
    assert torch.allclose(folded["conv1.weight"], module.conv1.weight * scale[:, None, None, None],
                          rtol=1e-6, atol=1e-7)


def test_build_api_takes_the_plain_weights(tmp_path, built):
    _, module, inputs, expected = plain(built, "resnet18")
    optimised = netc.build(SPECS / "resnet18.net", optimize=True, weights=module.state_dict())
    with torch.no_grad():
        assert_close(optimised(*inputs), expected)
    chosen = netc.build(SPECS / "resnet18.net", optimize=["fold_batchnorm"],
                        weights=module.state_dict())
    assert not hasattr(chosen, "bn1")
    with pytest.raises(ValueError, match="unknown pass"):
        netc.build(SPECS / "resnet18.net", optimize=["fold_everything"])


ACTIVATIONS = """
net Acts() {
  input image: [3, 12, 12]
  a = image >> conv(4, 3) >> relu >> conv(4, 3) >> relu6 >> conv(4, 3) >> silu
  b = a >> conv(4, 1) >> sigmoid >> conv(4, 3, stride = 2) >> tanh
  c = b >> conv(4, 3, bias = false) >> hardswish >> conv(4, 3, padding = "same") >> relu
  out c >> conv(4, 3, groups = 2, dilation = 2) >> bn >> relu
}
"""


def test_every_fused_activation_equals_plain(tmp_path):
    path = tmp_path / "acts.net"
    path.write_text(textwrap.dedent(ACTIVATIONS).lstrip())
    compiled = netc.compile(path)
    assert compiled.ok, compiled.diagnostics
    from netc.api import lower

    module = randomised(lower(compiled)[0])
    optimised, code, opt = O.lower(compiled.graph, module, O.PASS_NAMES, "acts")
    fused = [n.args["activation"] for n in opt.graph if n.op == "conv_act"]
    # all but the "same"-padded conv (which may pad unevenly) are fused
    assert sorted(fused) == sorted(["relu", "relu6", "silu", "sigmoid", "tanh", "hardswish",
                                    "relu"])
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        assert_close(optimised(x), module(x))
        assert_close(torch.jit.script(optimised)(x), module(x))


# ---- the command line and the artifacts

def test_passes_are_listed(capsys):
    assert main(["build", "--optimize", "--passes"]) == 0
    out = capsys.readouterr().out
    for name in O.PASS_NAMES:
        assert name in out


@pytest.mark.parametrize("argv, message", [
    (["--optimize", "--disable-pass", "nope"], "unknown pass nope"),
    (["--disable-pass", "channels_last"], "give --optimize"),
    (["--optimize", "--enable-pass", "fuse,channels_last"], "unknown pass fuse"),
    (["--enable-pass", "fuse_conv_activation"], "give --optimize"),
])
def test_bad_pass_options_are_usage_errors(tmp_path, capsys, argv, message):
    assert main(["build", str(SPECS / "simple_cnn.net"), "-o", str(tmp_path / "m.pt"),
                 *argv]) == 2
    assert message in capsys.readouterr().err


def _artifact_runner(fmt: str, path):
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "export":
        return torch.export.load(str(path)).module()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


@pytest.mark.parametrize("enable", [(), ("--enable-pass", "fuse_conv_activation")],
                         ids=["default", "fused"])
@pytest.mark.parametrize("fmt", ["torchscript", "export",
                                 pytest.param("onnx", marks=pytest.mark.slow), "py"])
def test_every_format_runs_like_plain(tmp_path, capsys, fmt, enable):
    """The CLI's --optimize artifact with --weights (the plain module's, BatchNorms
    randomised) computes what the plain module does; with the opt-in fusion too."""
    from netc.api import lower

    path = tmp_path / "tiny.net"
    path.write_text(textwrap.dedent(ACTIVATIONS).lstrip())
    module = randomised(lower(netc.compile(path))[0])
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        expected = module(x)
    suffix = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx", "py": ".py"}[fmt]
    out = tmp_path / f"opt{suffix}"
    weights = []
    if fmt != "py":
        torch.save(module.state_dict(), tmp_path / "w.pt")
        weights = ["--weights", str(tmp_path / "w.pt")]
    assert main(["build", str(path), "--optimize", *enable, "-o", str(out), *weights]) == 0
    report = capsys.readouterr().out
    assert "optimize " in report
    # (no such op in ONNX: the pass is dropped there even when asked for)
    assert ("fuse_conv_activation" in report) == (bool(enable) and fmt != "onnx")
    if fmt == "py":
        namespace: dict = {}
        exec(compile(out.read_text(), str(out), "exec"), namespace)  # our own generated file
        built = namespace["Acts"]().eval()
        folds = O.optimize(netc.compile(path).graph).folds
        built.load_state_dict(O.fold_state_dict(module.state_dict(), folds))
        run = built.to(memory_format=torch.channels_last)
    else:
        run = _artifact_runner(fmt, out)
    with torch.no_grad():
        assert_close(run(x), expected)


def test_progress_is_silent_when_piped(tmp_path, capsys):
    assert main(["build", str(SPECS / "simple_cnn.net"), "-o", str(tmp_path / "m.py")]) == 0
    assert "\r" not in capsys.readouterr().err


def test_progress_names_the_stages_on_a_terminal(tmp_path, monkeypatch):
    import io

    from netc.cli import _Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = _Progress(stream)
    for stage in ("check", "lower", "optimize", "script + write"):
        progress.stage(stage, "x.net")
    progress.done()
    text = stream.getvalue()
    assert all(f"netc: {stage} x.net" in text for stage in ("check", "lower", "optimize"))
    assert text.endswith("\r\x1b[2K")  # the line is cleared before the report


def test_prepacked_weights_keep_the_plain_state_dict(built):
    """prepack_weights: the fused convs read oneDNN's reordered weight; state_dict, loading,
    deep copies and pickling see the plain one."""
    import io

    from netc.prepacked import PrepackedConv2d

    graph, module, inputs, expected = plain(built, "mobilenet_v2")
    optimised, _, opt = O.lower(graph, module, O.PASS_NAMES, "mobilenet_v2")
    conv = optimised.get_submodule("features.0.0")
    assert isinstance(conv, PrepackedConv2d) and conv.weight.is_mkldnn
    unpacked, _, _ = O.lower(graph, module, [p for p in O.PASS_NAMES if p != "prepack_weights"])
    state = optimised.state_dict()
    assert list(state) == list(unpacked.state_dict())
    for key, value in unpacked.state_dict().items():
        assert torch.equal(state[key], value), key
    fresh, _, _ = O.lower(graph, randomised(module, seed=5), O.PASS_NAMES, "mobilenet_v2")
    fresh.load_state_dict(state, strict=True)
    buffer = io.BytesIO()
    torch.save(optimised, buffer)
    buffer.seek(0)
    copies = [fresh, copy.deepcopy(optimised), torch.load(buffer, weights_only=False)]
    with torch.no_grad():
        for other in copies:
            assert_close(other(*inputs), expected)
        x = torch.randn(1, 3, 16, 16)
        assert torch.allclose(conv(x), torch.nn.functional.conv2d(
            x, conv.plain_weight, conv.bias, conv.stride, conv.padding), atol=1e-6)
    with pytest.raises(RuntimeError, match="size mismatch"):
        fresh.load_state_dict({**state, "features.0.0.weight": torch.zeros(1, 3, 3, 3)})
