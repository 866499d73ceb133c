"""Static shapes equal the shapes the built module really produces, node by node.

Each generated `forward` keeps every node's value in its own local variable until its last
use, so a line tracer on the forwards sees them all; an item of an `nn.Sequential` is seen by
a hook on its layer. `PythonCode.variables` says which: (submodule path, variable) or
(layer path, "").
"""
from __future__ import annotations

import sys

import pytest
import torch

from conftest import PARITY, SPECS, with_slow

ALL_SPECS = sorted(p.stem for p in SPECS.glob("*.net"))


def runtime_values(module, code, inputs) -> dict[tuple[str, str], object]:
    """Every value the generated forwards compute, keyed by (submodule path, variable),
    caught line by line before a forward drops it (dead values are set to None after their
    last use), and the output of every layer, keyed by (its path, "")."""
    captured = {}
    path_of = {id(m): path for path, m in module.named_modules()}

    def local_tracer(frame, event, arg):
        path = path_of.get(id(frame.f_locals.get("self")))
        for name, value in frame.f_locals.items():
            if value is not None and (path, name) not in captured:
                captured[path, name] = value
        return local_tracer

    def tracer(frame, event, arg):
        if frame.f_code.co_name == "forward" and frame.f_code.co_filename.startswith("<netc:"):
            return local_tracer
        return None

    def hook(path):
        return lambda layer, args, output: captured.setdefault((path, ""), output)

    handles = [m.register_forward_hook(hook(path)) for path, m in module.named_modules() if path]
    sys.settrace(tracer)
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        sys.settrace(None)
        for handle in handles:
            handle.remove()
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
        if node.op == "param":  # a learnable tensor: its stored shape, no batch
            assert tuple(value.shape) == tuple(node.args["shape"]), node.id
            checked += 1
            continue
        assert value.shape[0] == batch if isinstance(value, torch.Tensor) else True
        static = tuple(node.shape) if not isinstance(node.shape, tuple) or not node.shape or \
            not isinstance(node.shape[0], tuple) else tuple(tuple(s) for s in node.shape)
        assert per_sample_shape(value) == static, f"{node.id}: static {node.shape}"
        checked += 1
    assert checked == len(graph)


@pytest.mark.parametrize("stem", with_slow(ALL_SPECS))
def test_every_node_shape_matches_runtime(stem, built):
    assert_static_equals_runtime(built(stem))
