"""Static shapes equal the shapes the built module really produces, node by node.

The generated `forward` keeps every node's value in its own local variable until its last
use, so a line tracer on `forward` sees them all; `PythonCode.variables` maps node ids to
those variables.
"""
from __future__ import annotations

import sys

import pytest
import torch

from conftest import PARITY, SPECS

ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.net"))


def runtime_values(module, code, inputs) -> dict[str, object]:
    """Every value the generated forward computes, caught line by line before the
    forward drops it (dead values are set to None after their last use)."""
    captured = {}

    def local_tracer(frame, event, arg):
        for name, value in frame.f_locals.items():
            if value is not None and name not in captured:
                captured[name] = value
        return local_tracer

    def tracer(frame, event, arg):
        if frame.f_code.co_name == "forward" and frame.f_code.co_filename.startswith("<netc:"):
            return local_tracer
        return None

    sys.settrace(tracer)
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        sys.settrace(None)
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
