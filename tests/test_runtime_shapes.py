"""Static shapes equal the shapes the built module really produces, node by node.

The generated `forward` keeps every node's value in its own local variable, so a profile
hook that catches `forward` returning sees them all; `PythonCode.variables` maps node ids
to those variables.
"""
from __future__ import annotations

import sys

import pytest
import torch

from conftest import PARITY, SPECS

ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.net"))


def runtime_values(module, code, inputs) -> dict[str, object]:
    """Every local of the generated forward at its return."""
    captured = {}

    def profiler(frame, event, arg):
        if event == "return" and frame.f_code.co_name == "forward" \
                and frame.f_code.co_filename.startswith("<netc:"):
            captured.update(frame.f_locals)

    sys.setprofile(profiler)
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        sys.setprofile(None)
    return captured


def per_sample_shape(value):
    if isinstance(value, (list, tuple)):
        return tuple(per_sample_shape(v) for v in value)
    return tuple(value.shape[1:])


def assert_static_equals_runtime(item, batch: int = 2):
    graph, module, code = item.graph, item.module, item.code
    inputs = [torch.randn(batch, *i.shape) for i in graph.inputs]
    values = runtime_values(module.eval(), code, inputs)
    checked = 0
    for node in graph:
        value = values[code.variables[node.id]]
        assert value.shape[0] == batch if isinstance(value, torch.Tensor) else True
        static = tuple(node.shape) if not isinstance(node.shape, tuple) or not node.shape or \
            not isinstance(node.shape[0], tuple) else tuple(tuple(s) for s in node.shape)
        assert per_sample_shape(value) == static, f"{node.id}: static {node.shape}"
        checked += 1
    assert checked == len(graph)


@pytest.mark.parametrize("stem", ALL_SPECS)
def test_every_node_shape_matches_runtime(stem, built):
    assert_static_equals_runtime(built(stem))
