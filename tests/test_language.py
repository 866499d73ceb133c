"""Language features, one small spec each: what they build, what they name, what they reject."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import netc
from netc.api import lower


def spec(tmp_path: Path, text: str, name: str = "t.net") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def compiled(tmp_path, text, **params):
    result = netc.compile(spec(tmp_path, text), **params)
    assert result.ok, netc.NetcError(result.diagnostics, result.sources)
    return result


def codes(tmp_path, text, **params) -> list[str]:
    return [d.code for d in netc.check(spec(tmp_path, text), **params)]


def keys(tmp_path, text, **params) -> list[str]:
    return list(netc.build(spec(tmp_path, text), **params).state_dict())


def test_named_list_numbers_parameter_free_elements_too(tmp_path):
    """timm's deep stem: ReLUs sit at indices 2 and 5 and own no keys."""
    found = keys(tmp_path, """
        defaults conv(bias = false)
        net Stem() {
          input x: [3, 32, 32]
          out x >> conv1: [conv(32, 3, 2), bn, relu, conv(32, 3), bn, relu, conv(64, 3)]
        }
    """)
    prefixes = sorted({k.rsplit(".", 1)[0] for k in found})
    assert prefixes == ["conv1.0", "conv1.1", "conv1.3", "conv1.4", "conv1.6"]


def test_names_computed_from_loop_indices_and_repeats_spliced(tmp_path):
    found = keys(tmp_path, """
        block Unit(c) { out in >> conv1: conv(c, 3) }
        net N(depths = [2, 3]) {
          input x: [3, 16, 16]
          for i in 0..len(depths) - 1 {
            x = x >> "stage{i + 1}": [Unit(8 * (i + 1)), Unit(8 * (i + 1)) * (depths[i] - 1)]
          }
          out x
        }
    """)
    assert [k for k in found if k.endswith("weight")] == [
        "stage1.0.conv1.weight", "stage1.1.conv1.weight",
        "stage2.0.conv1.weight", "stage2.1.conv1.weight", "stage2.2.conv1.weight"]


def test_only_the_chosen_branch_creates_layers(tmp_path):
    text = """
        block B(c, project = false) {
          s = if project or in.c != c then in >> down: conv(c, 1) else in
          out (in >> conv1: conv(c, 3)) + s
        }
        net N(c = 8) {
          input x: [8, 8, 8]
          out x >> b: B(c)
        }
    """
    assert not any("down" in k for k in keys(tmp_path, text))
    assert any(k.startswith("b.down") for k in keys(tmp_path, text, c=16))


def test_blocks_are_values_and_arguments(tmp_path):
    text = """
        block Plain(c) { out in >> conv(c, 3) >> relu }
        block Res(c) { out relu((in >> conv1: conv(c, 3)) + in) }
        net N(unit = Plain) {
          input x: [4, 8, 8]
          out x >> u: unit(4)
        }
    """
    assert keys(tmp_path, text) == ["u.conv.weight", "u.conv.bias"]
    path = spec(tmp_path, text)
    from netc.compiler import compile_spec, parse_override
    from netc.diagnostics import Diagnostics
    result = compile_spec(path, {"unit": parse_override("unit", "Res", Diagnostics())})
    assert result.ok
    assert [n.op for n in result.graph if n.op != "input"] == ["conv", "add", "relu"]


def test_unnamed_repeats_collide_and_say_how_to_fix(tmp_path):
    diags = netc.check(spec(tmp_path, """
        block Unit() { out in >> conv1: conv(8, 3) }
        net N() {
          input x: [8, 8, 8]
          out x >> Unit() * 2
        }
    """))
    assert [d.code for d in diags] == ["E203"]
    assert "conv1" in diags[0].message and "label" in diags[0].hint


def test_edges_add_mul_gate_cat_split_keep_operand_order(tmp_path):
    result = compiled(tmp_path, """
        net N() {
          input x: [8, 6, 6]
          a, b = split(x, 2)
          gate = x >> gap >> fc1: conv(2, 1) >> relu >> fc2: conv(8, 1) >> sigmoid
          y = cat(b, a, x * gate)
          out y + y
        }
    """)
    graph = result.graph
    cat = next(n for n in graph if n.op == "cat")
    assert [graph.node(i).args.get("index") for i in cat.inputs[:2]] == [1, 0]
    assert graph.node(graph.outputs[0]).shape == (16, 6, 6)
    add = next(n for n in graph if n.op == "add")
    assert add.inputs[0] == add.inputs[1]
    module, _ = lower(result)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        out = module(x)
    gate = torch.sigmoid(module.fc2(torch.relu(module.fc1(x.mean((2, 3), keepdim=True)))))
    a, b = x.chunk(2, 1)
    torch.testing.assert_close(out, 2 * torch.cat([b, a, x * gate], 1))


def test_pipe_lists_into_variadic_ops_and_composes_stages(tmp_path):
    result = compiled(tmp_path, """
        net N() {
          input x: [4, 8, 8]
          cbr = conv(8, 3) >> bn >> relu
          y = x >> head: cbr
          out [x, y] >> cat
        }
    """)
    assert result.graph.node(result.graph.outputs[0]).shape == (12, 8, 8)
    assert sorted({n.module for n in result.graph if n.module}) == ["head.0", "head.1"]


def test_imports_defaults_and_doc_comments(tmp_path):
    (tmp_path / "lib").mkdir()
    spec(tmp_path, """
        ## A library block.
        defaults conv(bias = false)
        block CB(c) { out in >> conv: conv(c, 3) >> bn: bn >> relu }
    """, "lib/blocks.net")
    path = spec(tmp_path, """
        ## The whole net.
        import "lib/blocks.net"
        net N() {
          input x: [3, 8, 8]
          out x >> a: CB(4) >> b: conv(4, 1)
        }
    """)
    module = netc.build(path)
    assert "a.conv.bias" not in module.state_dict()  # the library's defaults apply to its calls
    assert "b.bias" in module.state_dict()  # ...and not to ours
    assert netc.compile(path).graph.doc == "The whole net."


def test_import_problems_are_diagnosed(tmp_path):
    assert codes(tmp_path, 'import "missing.net"\nnet N() { input x: [1] \n out x }\n') == ["E205"]
    spec(tmp_path, 'import "b.net"\nblock A() { out in }\n', "a.net")
    spec(tmp_path, 'import "a.net"\nblock B() { out in }\n', "b.net")
    assert "E206" in codes(tmp_path, 'import "a.net"\nnet N() { input x: [1] \n out x }\n')
    outside = tmp_path.parent / "outside_netc_test.net"
    outside.write_text("block X() { out in }\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    assert codes(sub, 'import "../../outside_netc_test.net"\nnet N() { input x: [1]\n out x }\n') \
        == ["E205"]


def test_parameters_and_inputs_overridable_from_python(tmp_path):
    text = """
        net N(width = 8, num_classes = 10) {
          input image: [3, 16, 16]
          out image >> conv1: conv(width, 3) >> gap >> flatten >> fc: linear(num_classes)
        }
    """
    module = netc.build(spec(tmp_path, text), width=4, num_classes=3, image=(3, 8, 8))
    assert module.conv1.out_channels == 4 and module.fc.out_features == 3
    assert netc.build(spec(tmp_path, text), input_shape=(1, 8, 8)).conv1.in_channels == 1
    assert codes(tmp_path, text, widht=4) == ["E204"]


def test_net_alias_sets_new_defaults_that_overrides_replace(tmp_path):
    text = """
        net Base(c = 4, k = 3) {
          input x: [3, 16, 16]
          out x >> conv1: conv(c, k)
        }
        net small = Base(2)
    """
    assert netc.build(spec(tmp_path, text)).conv1.out_channels == 2
    assert netc.build(spec(tmp_path, text), c=6).conv1.out_channels == 6


def test_assert_and_argument_diagnostics(tmp_path):
    assert codes(tmp_path, """
        block B(c) {
          assert c % 2 == 0, "c must be even"
          out in >> conv(c, 3)
        }
        net N() { input x: [3, 8, 8]
          out x >> B(3) }
    """) == ["E212"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> conv(8, 3, strid = 2) }") \
        == ["E306"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> conv(-8, 3) }") == ["E308"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> conv(8, 3, groups = 2) }") \
        == ["E309"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> conv(8, 3, 1, 0, 1, 1, true, 9) }") \
        == ["E305"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> cnov(8, 3) }") == ["E201"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> flatten >> gap }") == ["E304"]
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n out x >> gap >> linear(10) }") == ["W301"]


def test_one_mistake_gives_one_diagnostic(tmp_path):
    """A failed statement poisons its names; later uses do not report again."""
    assert codes(tmp_path, """
        net N() {
          input x: [3, 8, 8]
          y = x >> conv(8, 3) >> flatten >> maxpool(2)
          z = y >> conv(8, 3) >> relu
          w = z + y
          out w >> gap
        }
    """) == ["E304"]


def test_hostile_names_never_reach_generated_code(tmp_path):
    assert codes(tmp_path, """
        net N() {
          input x: [3, 8, 8]
          out x >> "a);import os;(": conv(8, 3)
        }
    """) == ["E209"]
    result = compiled(tmp_path, """
        net N() {
          input x: [3, 8, 8]
          out x >> "class": conv(8, 3) >> "0": conv(8, 3) >> "import": conv(8, 3)
        }
    """)
    module, _ = lower(result)
    assert [k for k in module.state_dict() if k.endswith("weight")] == [
        "class.weight", "0.weight", "import.weight"]
    with torch.no_grad():
        assert module(torch.zeros(1, 3, 8, 8)).shape == (1, 8, 8, 8)


def test_limits_stop_runaway_specs(tmp_path):
    assert codes(tmp_path, """
        block U() { out in >> relu }
        net N() { input x: [3, 8, 8]
          out x >> s: U() * 1000000 }
    """) == ["E211"]
    assert codes(tmp_path, """
        block R() { out in >> R() }
        net N() { input x: [3, 8, 8]
          out x >> R() }
    """) == ["E211"]


def test_netc_error_renders_its_diagnostics(tmp_path):
    path = spec(tmp_path, "net N() {\n  input x: [3, 8, 8]\n  out x >> flatten >> gap\n}\n")
    with pytest.raises(netc.NetcError) as caught:
        netc.build(path)
    assert str(caught.value).startswith(f"{path}:3:23: error[E304]") or \
        ":3:23: error[E304]" in str(caught.value)
    assert caught.value.diagnostics[0].code == "E304"


@pytest.mark.parametrize("name", ["__init__", "forward", "training", "parameters"])
def test_module_attribute_names_are_rejected(tmp_path, name):
    assert codes(tmp_path, f"""
        net N() {{
          input x: [3, 8, 8]
          out x >> {name}: conv(8, 3)
        }}
    """) == ["E209"]


def test_reserved_names_list_matches_installed_torch():
    from netc.elaborate import RESERVED_MODULE_NAMES
    public = {n for n in set(dir(torch.nn.Module)) | set(vars(torch.nn.Module())) if not n.startswith("_")}
    assert public <= RESERVED_MODULE_NAMES


def test_generated_module_trains(built):
    """Dead values are dropped and ReLUs run in place where safe; backward must still work."""
    module = netc.build(Path(__file__).resolve().parent.parent / "specs" / "resnet18.net",
                        num_classes=4, image=[3, 32, 32]).train()
    x = torch.randn(2, 3, 32, 32)
    module(x).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_split_attention_matches_timm_radix_softmax(tmp_path):
    """ResNeSt's split attention written with split / sum / radix_softmax / multiply equals
    timm's SplitAttn arithmetic (reshape to radix, softmax, weighted sum)."""
    result = compiled(tmp_path, """
        net N(radix = 2, groups = 2) {
          input x: [8, 5, 5]
          y = x >> conv: conv(8 * radix, 3, groups = groups * radix, bias = false)
          parts = split(y, radix)
          gate = sum(parts) >> gap >> fc1: conv(4, 1, groups = groups) >> relu
                 >> fc2: conv(8 * radix, 1, groups = groups) >> radix_softmax(radix, groups)
          weights = split(gate, radix)
          out parts[0] * weights[0] + parts[1] * weights[1]
        }
    """)
    module, _ = lower(result)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        ours = module(x)
        y = module.conv(x)
        b, rc, h, w = y.shape
        splits = y.reshape(b, 2, rc // 2, h, w)
        gap = splits.sum(1).mean((2, 3), keepdim=True)
        attn = module.fc2(torch.relu(module.fc1(gap)))
        attn = torch.softmax(attn.view(b, 2, 2, -1).transpose(1, 2), 1).reshape(b, -1)
        attn = attn.view(b, -1, 1, 1).reshape(b, 2, rc // 2, 1, 1)
        theirs = (splits * attn).sum(1)
    torch.testing.assert_close(ours, theirs)


def test_doc_comments_cannot_break_the_generated_code(tmp_path):
    hostile = "## quotes \" and \"\"\" and \\ and \'\'\' stay text: \"\"\"); import os; (\"\"\"\n"
    path = tmp_path / "t.net"
    path.write_text(hostile + "net N() {\n  input x: [3, 8, 8]\n  out x >> c: conv(4, 3)\n}\n")
    module = netc.build(path)
    assert "import os" in type(module).__doc__
    assert not hasattr(module, "os")


def test_reshape_turns_a_vector_into_a_channel_gate(tmp_path):
    """Linear layers give [F] vectors; `reshape([c, 1, 1])` makes them gates for a map
    (the seed's SKNet attention is written with nn.Linear)."""
    result = compiled(tmp_path, """
        net N() {
          input x: [6, 4, 4]
          w = x >> gap >> flatten >> fc: linear(6) >> sigmoid >> reshape([6, 1, 1])
          out x * w
        }
    """)
    module, _ = lower(result)
    x = torch.randn(2, 6, 4, 4)
    with torch.no_grad():
        gate = torch.sigmoid(module.fc(x.mean((2, 3))))
        torch.testing.assert_close(module(x), x * gate[:, :, None, None])
    assert codes(tmp_path, """
        net N() {
          input x: [6, 4, 4]
          out x >> gap >> reshape([5, 1, 1])
        }
    """) == ["E311"]


def test_alias_of_an_alias_keeps_every_level(tmp_path):
    text = """
        net Base(c = 4, k = 3) {
          input x: [3, 16, 16]
          out x >> conv1: conv(c, k)
        }
        net wide = Base(c = 16)
        net wider = wide(k = 5)
    """
    conv = netc.build(spec(tmp_path, text)).conv1
    assert (conv.out_channels, conv.kernel_size) == (16, (5, 5))


def test_defaults_use_canonical_op_names_and_are_checked(tmp_path):
    text = """
        defaults conv2d(bias = false)
        net N() {
          input x: [3, 8, 8]
          out x >> a: conv(8, 3)
        }
    """
    assert "a.bias" not in netc.build(spec(tmp_path, text)).state_dict()
    assert codes(tmp_path, text.replace("conv2d(bias", "cnov(bias")) == ["E201"]
    assert codes(tmp_path, text.replace("(bias = false)", "(bais = false)")) == ["E306"]


def test_a_mistake_in_a_loop_is_reported_once(tmp_path):
    assert codes(tmp_path, """
        net N() {
          input x: [3, 8, 8]
          for i in 0..3 { x = x >> conv(8, 3) >> foo }
          out x
        }
    """) == ["E201"]


def test_dotted_and_nested_labels_and_partial_blocks(tmp_path):
    found = keys(tmp_path, """
        block W(c = in.c * 2, attn = 0) { out in >> conv: conv(c, 1) }
        net N() {
          input x: [3, 8, 8]
          unit = W(attn = 1)
          out x >> "paths.0": conv(8, 3) >> features: "block1": conv(8, 3) >> w: unit()
        }
    """)
    assert found == ["paths.0.weight", "paths.0.bias", "features.block1.weight",
                     "features.block1.bias", "w.conv.weight", "w.conv.bias"]
    assert netc.build(spec(tmp_path, """
        block W(c = in.c * 2) { out in >> conv: conv(c, 1) }
        net N() {
          input x: [3, 8, 8]
          out x >> w: W()
        }
    """)).w.conv.out_channels == 6


def test_layer_and_group_names_cannot_collide(tmp_path):
    assert codes(tmp_path, """
        net N() {
          input x: [3, 8, 8]
          out x >> a: conv(8, 3) >> "a.b": conv(8, 3)
        }
    """) == ["E203"]


def test_reserved_words_cannot_be_bound_and_same_padding_follows_pytorch(tmp_path):
    assert codes(tmp_path, "net N() { input x: [3, 8, 8]\n true = x >> relu\n out x }") == ["E209"]
    result = compiled(tmp_path, """
        net N() {
          input x: [3, 9, 9]
          out x >> c: conv(4, 4, padding = "same")
        }
    """)
    module, _ = lower(result)
    with torch.no_grad():
        assert tuple(module(torch.zeros(1, 3, 9, 9)).shape[1:]) == result.graph.node("c").shape


def test_one_part_sums_and_blocks_by_name_from_python(tmp_path):
    result = compiled(tmp_path, """
        net N() {
          input x: [4, 8, 8]
          out sum(split(x, 1))
        }
    """)
    assert [n.op for n in result.graph] == ["input", "split", "getitem"]
    root = Path(__file__).resolve().parent.parent / "specs"
    assert netc.check(root / "resnet50.net", block="BasicBlock", layers=[2, 2, 2, 2]) == []
    assert netc.build(root / "resnet50.net", block="BasicBlock", layers=[2, 2, 2, 2],
                      image=[3, 32, 32]).fc.in_features == 512


def test_a_parameter_hiding_an_op_gets_a_hint(tmp_path):
    diags = netc.check(spec(tmp_path, """
        net N(dropout = 0.5) {
          input x: [4]
          out x >> dropout(dropout)
        }
    """))
    assert [d.code for d in diags] == ["E202"] and "hides the op" in diags[0].hint
