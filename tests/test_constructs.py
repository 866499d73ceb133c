"""The language constructs modern nets need (issue 9): value functions and math builtins,
labels any `nn.Module` takes, tensors of other ranks, attention and learnable tensors,
stochastic depth, shuffles and norms; and the library search path.

Each construct is checked three ways: its static shape against the shape the built module
really produces (at two input sizes where the construct allows it), its values against
PyTorch's own layer, and its diagnostics."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import netc
from netc.compiler import compile_spec

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "t.net") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors(path: Path, **params) -> list[str]:
    compiled = compile_spec(path, params)
    return [d.code for d in compiled.diagnostics if d.is_error]


def shapes_match(module, graph, x) -> None:
    """Every node's static shape equals what the module computes (through forward hooks
    would miss functional ops; we compare the net's output, which depends on all of them)."""
    import torch

    with torch.no_grad():
        out = module(x)
    assert tuple(out.shape[1:]) == graph.node(graph.outputs[0]).shape


# ---- value functions and math builtins

def test_def_function_computes_values(tmp_path):
    spec = write(tmp_path, """
        def make_divisible(v, divisor = 8) {
          n = max(divisor, int(v + divisor / 2) // divisor * divisor)
          out if n < 0.9 * v then n + divisor else n
        }
        net T() {
          input x: [3, 8, 8]
          out x >> conv(make_divisible(27.75) + round(2.5) + ceil(0.1) + floor(1.9)
                        + int(log2(8)) + int(sqrt(16)), 1)
        }
        """)
    compiled = compile_spec(spec)
    assert compiled.ok, compiled.diagnostics
    # torchvision's _make_divisible(27.75, 8) is 32; round(2.5) is 2 (half to even)
    assert compiled.graph.node(compiled.graph.outputs[0]).shape[0] == 32 + 2 + 1 + 1 + 3 + 4


def test_def_function_cannot_make_layers(tmp_path):
    spec = write(tmp_path, """
        def f(x) { out x >> relu }
        net T() {
          input x: [3, 8, 8]
          y = f(x)
          out x
        }
        """)
    assert "E310" in errors(spec)


def test_def_function_needs_out_and_is_bounded(tmp_path):
    spec = write(tmp_path, """
        def f(n) { m = n }
        def g(n) { out g(n + 1) }
        net T() {
          input x: [3, 8, 8]
          a = f(1)
          out x >> conv(g(1), 1)
        }
        """)
    codes = errors(spec)
    assert "E208" in codes and "E211" in codes


def test_def_function_used_as_layer_is_an_error(tmp_path):
    spec = write(tmp_path, """
        def f(n) { out n }
        net T() {
          input x: [3, 8, 8]
          out x >> f
        }
        """)
    assert errors(spec) == ["E312"]


@pytest.mark.parametrize("call", ["log2(0)", "sqrt(-1)", "round(true)", "ceil([1])"])
def test_math_builtins_reject_bad_arguments(tmp_path, call):
    spec = write(tmp_path, f"""
        net T() {{
          input x: [3, 8, 8]
          out x >> conv({call}, 1)
        }}
        """)
    assert errors(spec) == ["E307"]


# ---- labels

def test_labels_take_any_module_name(tmp_path):
    spec = write(tmp_path, """
        net T() {
          input x: [3, 8, 8]
          out x >> "block1-0": [conv(4, 3), relu] >> "ünïcode": conv(5, 1)
        }
        """)
    module = netc.build(spec)
    assert list(module.state_dict()) == ["block1-0.0.weight", "block1-0.0.bias",
                                         "ünïcode.weight", "ünïcode.bias"]
    import torch
    torch.jit.script(module)  # non-identifier names are reached with getattr


@pytest.mark.parametrize("label", ["a b", "a'b", "x{", "back\\\\slash", ""])
def test_labels_stay_validated(tmp_path, label):
    spec = write(tmp_path, f"""
        net T() {{
          input x: [3, 8, 8]
          out x >> "{label}": conv(4, 3)
        }}
        """)
    assert errors(spec) and set(errors(spec)) <= {"E209", "E101", "E102", "E103", "E105"}


# ---- tensors of other ranks

RANK_NET = """
    net T() {
      input x: [8, 6, 4]
      t = x >> flatten(1) >> transpose(0, 1)             # [24, 8] tokens
      m = t >> permute([1, 0]) >> unflatten(1, [6, 4])    # back to [8, 6, 4]
      c = m >> permute([1, 2, 0]) >> layer_norm >> permute([2, 0, 1])
      r = c >> reshape([2, -1]) >> reshape([8, 6, 4])
      out r + x
    }
    """


def test_reordering_ops_shapes_and_values(tmp_path):
    import torch

    spec = write(tmp_path, RANK_NET)
    compiled = compile_spec(spec)
    assert compiled.ok, compiled.diagnostics
    module = netc.build(spec).eval()
    x = torch.randn(3, 8, 6, 4)
    ln = module.get_submodule("layer_norm")
    expected = ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) + x
    assert torch.equal(module(x), expected)
    shapes_match(module, compiled.graph, x)


@pytest.mark.parametrize("body, code", [
    ("x >> permute([0, 0, 1])", "E307"),
    ("x >> permute([0, 1])", "E308"),
    ("x >> transpose(0, 3)", "E308"),
    ("x >> unflatten(0, [3, 3])", "E311"),
    ("x >> flatten(2, 1)", "E308"),
    ("x >> reshape([5, -1])", "E311"),
    ("matmul(x, x)", "E301"),
    ("x >> layer_norm(dim = 1)", "E308"),
    ("x >> group_norm(3)", "E309"),
    ("x >> channel_shuffle(3)", "E309"),
    ("x >> mha(2)", "E304"),
    ("x >> conv1d(4, 3)", "E304"),
    ("x >> relative_attention(2, 3)", "E311"),
    ("x >> reshape([8, 4, 6]) >> relative_attention(4, 2)", "E309"),
    ("x >> flatten(1) >> conv1d(4, 3, groups = 3)", "E309"),
    ("x >> flatten(1) >> conv1d(4, 40, padding = 0)", "E303"),
    ("x >> stochastic_depth(0.1, \"rows\")", "E307"),
])
def test_new_ops_diagnose_misuse(tmp_path, body, code):
    spec = write(tmp_path, f"""
        net T() {{
          input x: [8, 6, 4]
          out {body}
        }}
        """)
    assert errors(spec) == [code]


def test_tokens_input_and_matmul(tmp_path):
    import torch

    spec = write(tmp_path, """
        net T() {
          input x: [5, 16]
          q = x >> q: linear(16)
          k = x >> k: linear(16) >> transpose(0, 1)
          a = matmul(q, k) >> softmax(-1)
          out matmul(a, x)[0]
        }
        """)
    compiled = compile_spec(spec)
    assert compiled.ok, compiled.diagnostics
    module = netc.build(spec).eval()
    x = torch.randn(2, 5, 16)
    q, k = module.q(x), module.k(x)
    expected = torch.softmax(q @ k.transpose(1, 2), -1) @ x
    assert torch.allclose(module(x), expected[:, 0], atol=1e-6)
    assert compiled.graph.node(compiled.graph.outputs[0]).shape == (16,)


# ---- attention and learnable tensors

def test_mha_is_nn_multihead_attention(tmp_path):
    import torch

    spec = write(tmp_path, """
        net T() {
          input x: [7, 32]
          out x >> attn: mha(4)
        }
        """)
    module = netc.build(spec).eval()
    assert isinstance(module.attn, torch.nn.MultiheadAttention)
    assert {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight"} <= set(
        module.state_dict())
    x = torch.randn(2, 7, 32)
    assert torch.equal(module(x), module.attn(x, x, x, need_weights=False)[0])
    summary = str(netc.summary(spec))
    assert "4,224" in summary  # 4 * 32 * 32 + 4 * 32 parameters


def test_params_are_registered_and_expanded_along_the_batch(tmp_path):
    import torch

    spec = write(tmp_path, """
        net T() {
          input x: [4, 8]
          t = cat(cls: param([1, 1, 8]), x)
          t = t + pos: param([1, 5, 8], init = "normal", std = 0.5)
          out (scale: param([8], init = "full", value = 2.0)) * t
        }
        """)
    compiled = compile_spec(spec)
    assert compiled.ok, compiled.diagnostics
    module = netc.build(spec)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        "cls": (1, 1, 8), "pos": (1, 5, 8), "scale": (8,)}
    assert torch.equal(module.scale, torch.full((8,), 2.0)) and not module.cls.any()
    x = torch.randn(3, 4, 8)
    expected = module.scale * (torch.cat([module.cls.expand(3, -1, -1), x], 1) + module.pos)
    assert torch.equal(module(x), expected)
    scripted = torch.jit.script(module)
    assert torch.equal(scripted(x), expected)
    out = module(x)
    out.sum().backward()
    assert module.cls.grad is not None


def test_cat_of_params_only_is_an_error(tmp_path):
    spec = write(tmp_path, """
        net T() {
          input x: [4, 8]
          out cat(a: param([1, 1, 8]), b: param([1, 1, 8]))
        }
        """)
    assert "E312" in errors(spec)


# ---- regularisation, shuffles, norms

def test_stochastic_depth_is_identity_in_eval_and_drops_rows_in_training(tmp_path):
    import torch

    spec = write(tmp_path, """
        net T() {
          input x: [4, 3, 3]
          out x >> stochastic_depth(0.5)
        }
        """)
    module = netc.build(spec)
    x = torch.randn(64, 4, 3, 3)
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    torch.manual_seed(0)
    y = module(x)
    kept = [torch.equal(y[i], 2 * x[i]) for i in range(64)]
    dropped = [not y[i].any() for i in range(64)]
    assert all(k or d for k, d in zip(kept, dropped)) and any(kept) and any(dropped)


def test_channel_shuffle_matches_torch(tmp_path):
    import torch

    spec = write(tmp_path, """
        net T() {
          input x: [12, 5, 3]
          out x >> channel_shuffle(3)
        }
        """)
    module = netc.build(spec)
    x = torch.randn(2, 12, 5, 3)
    assert torch.equal(module(x), torch.nn.ChannelShuffle(3)(x))
    x = torch.randn(2, 12, 7, 9)  # sizes follow the input
    assert torch.equal(module(x), torch.nn.ChannelShuffle(3)(x))


def test_norms_match_torch(tmp_path):
    import torch
    import torch.nn.functional as F

    spec = write(tmp_path, """
        net T() {
          input x: [8, 5, 5]
          a = x >> cf: layer_norm(1e-6, dim = 0)
          out a >> gn: group_norm(2)
        }
        """)
    module = netc.build(spec).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    x = torch.randn(2, 8, 5, 5)
    a = F.layer_norm(x.permute(0, 2, 3, 1), (8,), module.cf.weight, module.cf.bias,
                     1e-6).permute(0, 3, 1, 2)
    expected = F.group_norm(a, 2, module.gn.weight, module.gn.bias)
    assert torch.allclose(module(x), expected, atol=1e-6)
    assert type(module.cf).__name__ == "LayerNorm2d"


def test_conv1d_over_pooled_channels_matches_torch(tmp_path):
    import torch

    spec = write(tmp_path, """
        block ECA(k = 3) {
          c = in.c
          g = in >> gap >> flatten >> unflatten(0, [1, c]) >> conv: conv1d(1, k, bias = false)
                 >> flatten >> reshape([c, 1, 1]) >> sigmoid
          out in * g
        }
        net T() {
          input x: [16, 8, 8]
          out x >> eca: ECA(5)
        }
        """)
    module = netc.build(spec).eval()
    conv = module.eca.conv
    assert isinstance(conv, torch.nn.Conv1d) and conv.padding == (2,)
    x = torch.randn(2, 16, 8, 8)
    gate = torch.sigmoid(conv(x.mean((2, 3)).unsqueeze(1)).squeeze(1))[..., None, None]
    assert torch.allclose(module(x), x * gate, atol=1e-6)
    x = torch.randn(2, 16, 5, 3)  # any spatial size
    gate = torch.sigmoid(conv(x.mean((2, 3)).unsqueeze(1)).squeeze(1))[..., None, None]
    assert torch.allclose(module(x), x * gate, atol=1e-6)


def test_every_new_construct_exports_and_scripts(tmp_path):
    import torch

    spec = write(tmp_path, """
        net T() {
          input x: [8, 8, 8]
          y = x >> stem: [conv(16, 2, 2, padding = 0), layer_norm(dim = 0)]
                >> channel_shuffle(4) >> stochastic_depth(0.2)
          t = y >> flatten(1) >> transpose(0, 1)
          t = cat(cls: param([1, 1, 16]), t) >> attn: mha(2)
          out t[0] >> head: [layer_norm, linear(3)]
        }
        """)
    module = netc.build(spec).eval()
    x = torch.randn(2, 8, 8, 8)
    expected = module(x)
    assert torch.equal(torch.jit.script(module)(x), expected)
    program = torch.export.export(module, (x,))
    assert torch.allclose(program.module()(x), expected, atol=1e-6)


def test_conv_padding_is_shown_in_the_summary():
    text = str(netc.summary("resnet18"))
    assert "conv 7x7/2 p3" in text and "conv 1x1/2 p0" in text


# ---- the library search path

def test_shipped_models_are_found_by_name():
    assert {"resnet50", "vit_b_16", "convnext_tiny"} <= set(netc.list_models())
    assert netc.check("resnet50") == []
    assert compile_spec("vit_b_16").graph.name == "vit_b_16"


def test_import_by_library_name_from_any_directory(tmp_path):
    spec = write(tmp_path, """
        import "resnet"
        import "lib/vit.net"
        net mine = ResNet(BasicBlock, [1, 1, 1, 1], num_classes = 7)
        """)
    compiled = compile_spec(spec)
    assert compiled.ok, compiled.diagnostics


def test_netc_path_and_lib_option(tmp_path):
    library = tmp_path / "mylib"
    library.mkdir()
    write(library, """
        block Twice(c) { out in >> conv(c, 3) >> conv(c, 3) }
        """, "twice.net")
    write(library, """
        import "twice"
        net tiny() {
          input x: [3, 8, 8]
          out x >> Twice(4)
        }
        """, "tiny.net")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NETC_PATH", None)
    run = lambda *args, **kw: subprocess.run([sys.executable, "-m", "netc", *args], cwd=work,
                                             capture_output=True, text=True, timeout=120, **kw)
    assert run("check", "tiny", env=env).returncode == 2
    result = run("--lib", str(library), "check", "tiny", env=env)
    assert result.returncode == 0, result.stderr
    result = run("check", "tiny", env={**env, "NETC_PATH": str(library)})
    assert result.returncode == 0, result.stderr
    listed = run("--lib", str(library), "list", env=env).stdout.split()
    assert "tiny" in listed and "resnet50" in listed


def test_relative_attention_equals_torchvision_maxvit_attention(tmp_path):
    import torch

    from refmodels import torchvision

    spec = write(tmp_path, """
        net T() {
          input x: [4, 9, 64]
          out x >> attn: relative_attention(16, 3)
        }
        """)
    module = netc.build(spec).eval()
    reference = torchvision().models.maxvit.RelativePositionalMultiHeadAttention(64, 16, 9)
    reference.eval()
    assert [f"attn.{k}" for k in reference.state_dict()] == list(module.state_dict())
    module.attn.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 4, 9, 64)
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.jit.script(module)(x), reference(x), rtol=1e-5, atol=1e-6)


def test_a_labelled_layer_bound_to_a_name_is_registered_where_written(tmp_path):
    spec = write(tmp_path, """
        block PatchMerging() {
          reduce = reduction: linear(2 * in.shape[2], bias = false)
          out in >> norm: layer_norm >> reduce
        }
        net T() {
          input x: [8, 8, 16]
          y = x >> merge: PatchMerging()
          out y >> head: [linear(3)]
        }
        """)
    module = netc.build(spec)
    assert list(module.state_dict()) == ["merge.reduction.weight", "merge.norm.weight",
                                         "merge.norm.bias", "head.0.weight", "head.0.bias"]
    # applied where used: norm before reduction
    import torch
    x = torch.randn(2, 8, 8, 16)
    m = module.merge
    assert torch.equal(module(x), module.head(m.reduction(m.norm(x))))


def test_a_layer_bound_just_before_a_labelled_sequence_is_registered_before_it(tmp_path):
    """The declaration sorts before the sequence made right after it (it used to sort after,
    because a sequence's place and a declaration's were both half-way to the next node)."""
    spec = write(tmp_path, """
        net T() {
          input x: [4, 8, 8]
          post = norm2: batchnorm
          out x >> mlp: [conv(4, 1), relu, conv(4, 1)] >> post
        }
        """)
    module = netc.build(spec)
    keys = [key for key in module.state_dict() if key.endswith("weight")]
    assert keys == ["norm2.weight", "mlp.0.weight", "mlp.2.weight"]
