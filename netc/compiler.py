"""The pipeline, as a flat list of stages: parse+import -> elaborate (with shapes) -> verify.

Each stage appends to one `Diagnostics` list; the driver stops after a stage that produced
errors, so the user sees every error of that stage and no follow-on noise.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc import ast
from netc.diagnostics import Diagnostic, Diagnostics
from netc.analysis import totals
from netc.elaborate import Elaborator
from netc.infer import infer_graph
from netc.ir import Graph
from netc.loader import load_program, resolve_spec
from netc.parser import parse_expression
from netc.source import SourceMap, Span


# Errors found by shape rules; in permissive mode, a net with only these is still lowered.
SHAPE_CODES = {"E301", "E302", "E303", "E304", "E309", "E311", "E313"}


@dataclass
class Compiled:
    """What a compilation produced: the typed graph (when there were no errors), every
    diagnostic, and the sources they quote."""

    spec: Path
    graph: Graph | None
    diagnostics: list[Diagnostic]
    sources: SourceMap = field(default_factory=SourceMap)

    @property
    def ok(self) -> bool:
        return self.graph is not None and not any(d.is_error for d in self.diagnostics)


def parse_override(key: str, text: str, diags: Diagnostics) -> ast.Expr | None:
    """A `-D key=value` value, parsed as a netc expression (numbers, lists, block names)."""
    span = Span(f"-D {key}", 1, 1, 1, len(text) + 1)
    return parse_expression(text, span, diags)


@contextlib.contextmanager
def _deep_recursion(limit: int = 8000):
    """Room for long chains (`x >> a >> b >> ...` nests one level per `>>`); deeper specs
    are reported as E211 by the stages that catch RecursionError."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def compile_spec(spec: str | Path, params: dict[str, Any] | None = None,
                 input_shape: tuple[int, ...] | None = None, net: str | None = None,
                 permissive: bool = False, limits: dict[str, int] | None = None) -> Compiled:
    """Compile one spec file. `params` override the net's parameters (or input shapes, by
    input name); values are Python values or `ast.Expr` (from `-D`). `permissive` keeps
    going past shape errors with guessed shapes and returns the graph anyway (for testing
    netc against PyTorch, never for users)."""
    with _deep_recursion():
        return _compile(spec, params, input_shape, net, permissive, limits)


def _compile(spec, params, input_shape, net, permissive=False, limits=None,
             explain=True) -> Compiled:
    """Compile one spec file. `params` override the net's parameters (or input shapes, by
    input name); values are Python values or `ast.Expr` (from `-D`)."""
    diags = Diagnostics()
    path = resolve_spec(spec)  # a file, or a shipped model's name (`resnet50`)
    if path is None:
        diags.error("E205", f"cannot read `{spec}`: no such file or model", None,
                    hint="a path to a .net file, or a model name from `netc list`")
        return Compiled(Path(spec), None, diags)
    program = load_program(path, diags)
    if diags.has_errors or program.root is None:
        return Compiled(path, None, diags, program.sources)
    elaborator = Elaborator(program, diags, permissive=permissive, limits=limits)
    overrides = dict(params or {})
    if input_shape is not None:
        overrides["<input>"] = tuple(input_shape)
    graph = elaborator.elaborate(net, overrides)
    if graph is not None:
        graph.spec_path = str(path)
    if permissive:
        only_shapes = all(d.code in SHAPE_CODES for d in diags if d.is_error)
        return Compiled(path, graph if only_shapes else None, diags, program.sources)
    if graph is None or diags.has_errors:
        # (compiling again costs a few compilations: only for nets of ordinary size)
        if explain and graph is not None and graph.inputs and elaborator.steps <= 50_000:
            diags = _explain_small_input(diags, elaborator, graph, spec, params, net, limits)
        return Compiled(path, None, diags, program.sources)
    infer_graph(graph, diags)  # every shape again, from the inputs alone
    _check_size(graph, elaborator.limits, diags)
    return Compiled(path, None if diags.has_errors else graph, diags, program.sources)


def _explain_small_input(diags, elaborator, graph, spec, params, net, limits):
    """A size error (E303/E313) pointed at the input, with the smallest size that works
    (found by compiling again at other sizes; see `netc.cause.explain_small_input`)."""
    from netc.cause import explain_small_input

    first = graph.inputs[0]

    def compile_at(shape):
        return _compile(spec, params, shape, net, limits=limits, explain=False).diagnostics

    origin = elaborator.override_origin.get(first.name)
    return explain_small_input(list(diags), compile_at, first, origin)


def _check_size(graph: Graph, limits: dict[str, int], diags: Diagnostics) -> None:
    """A net too big to allocate is an error before anything allocates it."""
    params = totals(graph).params
    if params > limits["params"]:
        diags.error("E211", f"the net has {params:,} parameters, beyond the limit of "
                            f"{limits['params']:,}", graph.node(graph.outputs[0]).span
                    if graph.outputs else None,
                    hint="raise it with `--limit params=N` if this is intended")
