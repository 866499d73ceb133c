"""The static analysis behind `netc summary`: receptive fields against hand computation and
against the gradient of a built module, and the minimum input size against `netc check`
and PyTorch."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import netc
from conftest import PARITY, SPECS
from netc.analysis import GLOBAL, analyse, field_along, min_input_size
from netc.compiler import compile_spec


def write(tmp_path: Path, text: str, name: str = "t.net") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def analysed(path: Path, **params):
    compiled = netc.compile(path, **params)
    assert compiled.ok, netc.NetcError(compiled.diagnostics, compiled.sources)
    return compiled.graph, analyse(compiled.graph)


def by_hand(layers: list[tuple[int, int]]) -> int:
    """The source documents' recurrence, from the top: RF_i = (RF_{i+1} - 1) * s_i + k_i."""
    rf = 1
    for kernel, stride in reversed(layers):
        rf = (rf - 1) * stride + kernel
    return rf


CONV_STACK = """
    ## Three 3x3 convs, the first two with stride 2.
    net Stack() {
      input x: [3, 64, 64]
      out x >> c1: conv(8, 3, 2) >> c2: conv(8, 3, 2) >> c3: conv(8, 3)
    }
"""


def test_conv_stack_field_equals_the_hand_formula(tmp_path):
    graph, a = analysed(write(tmp_path, CONV_STACK))
    stats = a.by_id
    assert (stats["c1"].rf, stats["c1"].jump) == ((3, 3), (2, 2))
    assert (stats["c2"].rf, stats["c2"].jump) == ((7, 7), (4, 4))
    assert (stats["c3"].rf, stats["c3"].jump) == ((15, 15), (4, 4))
    assert stats["c3"].rf[0] == by_hand([(3, 2), (3, 2), (3, 1)]) == 15


def test_simple_cnn_fields_by_hand():
    graph, a = analysed(SPECS / "simple_cnn.net")
    rf = {n.id: (n.rf, n.jump) for n in a.nodes}
    assert rf["conv1"] == ((3, 3), (1, 1))
    assert rf["maxpool"] == ((4, 4), (2, 2))
    assert rf["conv2"] == ((8, 8), (2, 2))
    assert rf["maxpool_1"] == ((10, 10), (4, 4))
    assert by_hand([(3, 1), (2, 2), (3, 1), (2, 2)]) == 10
    assert rf["flatten"][0] is GLOBAL and rf["fc2"][0] is GLOBAL  # fc1 sees every pixel


def test_resnet18_stem_field_is_11_at_stride_4():
    graph, a = analysed(SPECS / "resnet18.net")
    assert (a.by_id["conv1"].rf, a.by_id["conv1"].jump) == ((7, 7), (2, 2))
    assert (a.by_id["maxpool"].rf, a.by_id["maxpool"].jump) == ((11, 11), (4, 4))
    assert by_hand([(7, 2), (3, 2)]) == 11
    largest = a.largest_local_field()
    assert (largest.rf, largest.jump) == ((435, 435), (32, 32))


def _main_path(graph, stop: str) -> list[str]:
    """The path people compute by hand: from the input through every block's residual
    branch (conv1 -> conv2 (the 3x3) -> conv3), never through a shortcut."""
    path, node = [], graph.node(stop)
    while True:
        path.append(node.id)
        if node.op == "input":
            return path[::-1]
        if node.op == "add":  # the residual branch is the operand with the convolutions
            node = graph.node(next(i for i in node.inputs if ".bn" in i))
        else:
            node = graph.node(node.inputs[0])


def test_resnet50_fields_267_at_layer3_and_427_at_layer4(built):
    graph, a = analysed(SPECS / "resnet50.net")
    layer3 = graph.node("layer3.5.relu_2")
    layer4 = graph.node("layer4.2.relu_2")
    assert layer3.shape == (1024, 14, 14) and layer4.shape == (2048, 7, 7)
    # the hand computation (DeLF-pytorch #15), along the 3x3 convs of the main path
    main = [(7, 2), (3, 2)]  # conv1, maxpool
    for stage, blocks in enumerate([3, 4, 6, 3]):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            main += [(1, 1), (3, stride), (1, 1)]  # v1.5: the 3x3 conv strides
        if stage == 2:
            assert by_hand(main) == 267
    assert by_hand(main) == 427
    for node, rf, jump in ((layer3, 267, 16), (layer4, 427, 32)):
        along = field_along(graph, _main_path(graph, node.id))
        assert (along[0].size, along[0].jump) == (rf, jump)
        # the largest field over all paths is the main path's: shortcuts skip convolutions
        stats = a.by_id[node.id]
        assert (stats.rf, stats.jump) == ((rf, rf), (jump, jump))
        assert stats.rf_local == stats.rf
    # the shortest path runs through every projection shortcut: only the stem's 11 remains
    assert a.by_id[layer4.id].rf_min == (11, 11)
    assert a.by_id["fc"].rf is GLOBAL


def test_attention_gates_make_fields_global_but_the_local_field_stays(tmp_path):
    graph, a = analysed(write(tmp_path, """
        block SE(c) {
          out in * (in >> gap >> fc1: conv(c // 2, 1) >> relu >> fc2: conv(c, 1) >> sigmoid)
        }
        net N() {
          input x: [3, 32, 32]
          y = x >> c1: conv(8, 3) >> se: SE(8)
          out y >> c2: conv(8, 3, 2)
        }
    """))
    c2 = a.by_id["c2"]
    assert c2.rf is GLOBAL  # every output pixel depends on the whole input through the gate
    assert (c2.rf_local, c2.jump) == ((5, 5), (2, 2))  # what people compute by hand


def test_fields_of_a_dag_are_the_union_over_paths(tmp_path):
    """An Inception-like module: branches with different fields, concatenated."""
    graph, a = analysed(write(tmp_path, INCEPTION))
    assert a.by_id["b1"].rf == (3, 3)
    assert a.by_id["b3"].rf == (7, 7)
    assert a.by_id["b5"].rf == (11, 11)  # 3x3 conv, then a 5x5 conv dilated by 2
    assert a.by_id["cat"].rf == (11, 11)
    assert a.by_id["cat"].rf_min == (3, 3)
    assert a.by_id["head"].rf == (12, 12) and a.by_id["head"].jump == (2, 2)  # 11 + (2 - 1) * 1


INCEPTION = """
    net Inception() {
      input x: [3, 48, 48]
      s = x >> stem: conv(8, 3) >> leaky_relu
      b1 = s >> b1: conv(4, 1)
      b3 = s >> b3: conv(4, 5)
      b5 = s >> b5: conv(4, 5, dilation = 2)
      pool = s >> maxpool(3, 1, 1) >> pp: conv(4, 1)
      out cat(b1, b3, b5, pool) >> leaky_relu >> head: conv(8, 2, 2, 0)
    }
"""

# Nets whose field a gradient can measure: convolutions, average pooling, residual adds;
# ReLU and max pooling only let part of the field through for one input, so the gradient is
# taken over a batch of random inputs and the union of the supports compared.
EMPIRICAL = {
    "conv_stack": CONV_STACK,
    "dilated_and_pooled": """
        net N() {
          input x: [2, 64, 64]
          out x >> conv(4, 3, dilation = 2) >> avgpool(2) >> conv(4, 5, 2) >> conv(4, [3, 1])
        }
    """,
    "inception": INCEPTION,
    "residual_relu_maxpool": """
        defaults conv(bias = false)
        block Basic(c, stride = 1) {
          y = in >> conv1: conv(c, 3, stride) >> bn1: bn >> relu >> conv2: conv(c, 3) >> bn2: bn
          s = if stride != 1 or in.c != c then in >> down: [conv(c, 1, stride), bn] else in
          out relu(y + s)
        }
        net Stem() {
          input x: [3, 96, 96]
          out x >> conv1: conv(8, 7, 2) >> bn1: bn >> relu >> maxpool(3, 2, 1)
                >> a: Basic(8) >> b: Basic(16, 2)
        }
    """,
}


def _gradient_support(module, shape, row: int, col: int, batch: int = 16):
    """Input rows and columns touched by the gradient of one output pixel (all channels)."""
    torch.manual_seed(0)
    module = module.double().eval()
    x = torch.randn(batch, *shape, dtype=torch.float64, requires_grad=True)
    module(x)[:, :, row, col].sum().backward()
    touched = x.grad.abs().sum((0, 1)) > 0
    rows = touched.any(1).nonzero().flatten().tolist()
    cols = touched.any(0).nonzero().flatten().tolist()
    return (rows[0], rows[-1]), (cols[0], cols[-1])


@pytest.mark.parametrize("case", sorted(EMPIRICAL))
def test_field_equals_the_gradient_support_of_a_built_module(case, tmp_path):
    path = write(tmp_path, EMPIRICAL[case])
    graph, a = analysed(path)
    out = a.by_id[graph.outputs[0]]
    shape = graph.inputs[0].shape
    expected, pixel = [], []
    for axis in (0, 1):
        jump, start, size = out.jump[axis], out.rf_start[axis], out.rf[axis]
        # an output pixel whose whole field lies inside the input
        i = next(i for i in range(graph.node(graph.outputs[0]).shape[axis + 1])
                 if i * jump + start >= 0)
        assert i * jump + start + size <= shape[axis + 1], "input too small for the test"
        pixel.append(i)
        expected.append((i * jump + start, i * jump + start + size - 1))
    module = netc.build(path)
    assert _gradient_support(module, shape, *pixel) == tuple(expected)


# ---- the minimum input size

MIN_CASES = {
    # three valid 3x3 convs lose 2 pixels each: 7 is the least, any size above works
    "valid_convs": ("""
        net N() {
          input x: [3, 32, 32]
          out x >> conv(8, 3, padding = 0) >> conv(8, 3, padding = 0) >> conv(8, 3, padding = 0)
        }
    """, (7, 7), 1, True),
    # a 2x2 average pool (floor) beside a strided 3x3 conv (ceil) agree on even sizes only;
    # twice over: multiples of 4, from 8. Below 8, where a 1x1 map broadcasts against a 2x2
    # one by coincidence, 3, 4 and 6 work too
    "pool_shortcut": ("""
        block Down(c) {
          out (in >> conv(c, 3, 2)) + (in >> avgpool(2) >> conv(c, 1))
        }
        net N() {
          input x: [3, 32, 32]
          out x >> a: Down(8) >> b: Down(8) >> gap >> flatten >> fc: linear(10)
        }
    """, (3, 8), 4, True),
    # adaptive pooling before the classifier: one model for every size
    "adaptive": ("""
        net N() {
          input x: [3, 32, 32]
          out x >> conv(8, 5, 2, 0) >> maxpool(2) >> adaptive_avgpool(3) >> flatten
                >> fc: linear(10)
        }
    """, (7, 7), 1, True),
    "simple_cnn": (None, (4, 4), 1, False),
}


@pytest.mark.parametrize("case", sorted(MIN_CASES))
def test_min_input_builds_and_one_size_below_fails(case, tmp_path):
    text, (smallest, regular), step, any_size = MIN_CASES[case]
    path = SPECS / "simple_cnn.net" if text is None else write(tmp_path, text)
    graph, a = analysed(path)
    found = a.min_input
    for axis in (found.height, found.width):
        assert (axis.min, axis.regular, axis.step) == (smallest, regular, step)
    assert found.any_size == any_size
    if case == "pool_shortcut":
        assert found.height.early == (3, 4, 6)
        assert found.describe() == "any size >= 3x3: 3, 4, 6, then from 8 in steps of 4"
    channels = graph.inputs[0].shape[0]

    def check(size):
        return compile_spec(path, input_shape=(channels, size, size)).ok

    assert check(smallest) and check(regular) and check(regular + step)
    assert not check(smallest - 1), "one size below the minimum must not check"
    if step > 1:
        assert not check(regular + 1)
    with torch.no_grad():
        for size in (smallest, regular + step):
            module = netc.build(path, input_shape=(channels, size, size)).eval()
            module(torch.randn(1, channels, size, size))
        module = netc.build(path, input_shape=(channels, smallest, smallest)).eval()
        with pytest.raises(RuntimeError):
            module(torch.randn(1, channels, smallest - 1, smallest - 1))
        if step > 1:
            module = netc.build(path, input_shape=(channels, regular, regular)).eval()
            with pytest.raises(RuntimeError):
                module(torch.randn(1, channels, regular + 1, regular + 1))


def test_simple_cnn_model_takes_32_to_35(built):
    a = analyse(built("simple_cnn").graph)
    assert a.min_input.height.model == (32, 35) and a.min_input.resized == "fc1"
    module = built("simple_cnn").module
    with torch.no_grad():
        for size in (32, 35):
            assert module(torch.randn(1, 3, size, size)).shape == (1, 10)
        for size in (31, 36):
            with pytest.raises(RuntimeError):
                module(torch.randn(1, 3, size, size))


@pytest.mark.parametrize("stem", sorted(PARITY))
def test_min_input_of_every_reference_spec(stem, built):
    """At the minimum the spec checks and (where one model takes every size) the built
    reference module runs; one size below, `netc check` reports an error."""
    graph = built(stem).graph
    found = min_input_size(graph)
    shape = found.shape
    assert compile_spec(SPECS / f"{stem}.net", input_shape=shape).ok
    if found.height.min > 1:
        below = (shape[0], shape[1] - 1, shape[2])
        assert not compile_spec(SPECS / f"{stem}.net", input_shape=below).ok
    if found.any_size:
        module = built(stem).module.eval()
        with torch.no_grad():
            module(torch.zeros(1, *shape))
            if found.height.min > 1:
                with pytest.raises(RuntimeError):
                    module(torch.zeros(1, shape[0], shape[1] - 1, shape[2] - 1))
