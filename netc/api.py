"""The Python API: `compile`, `check`, `generate_source` (torch-free) and `build`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from netc.codegen import PythonCode, emit_module
from netc.compiler import Compiled, compile_spec
from netc.diagnostics import Diagnostic, NetcError


def compile(spec: str | Path, *, input_shape: tuple[int, ...] | None = None,
            net: str | None = None, **params: Any) -> Compiled:
    """Parse, elaborate and type a spec; the result holds the graph and all diagnostics."""
    return compile_spec(spec, params, input_shape=input_shape, net=net)


def check(spec: str | Path, **params: Any) -> list[Diagnostic]:
    """Every diagnostic for the spec (errors and warnings); an empty list means valid."""
    return list(compile_spec(spec, params).diagnostics)


def _compiled_or_raise(spec, params, input_shape=None, net=None) -> Compiled:
    compiled = compile_spec(spec, params, input_shape=input_shape, net=net)
    if not compiled.ok:
        raise NetcError(compiled.diagnostics, compiled.sources)
    return compiled


def generate_source(spec: str | Path, **params: Any) -> PythonCode:
    """The Python source of the module netc would build (raises NetcError on errors)."""
    compiled = _compiled_or_raise(spec, params)
    return emit_module(compiled.graph, compiled.spec.name)


def build(spec: str | Path, *, input_shape: tuple[int, ...] | None = None,
          net: str | None = None, **params: Any):
    """The spec as an `nn.Module` (params override the spec's; raises NetcError on errors)."""
    compiled = _compiled_or_raise(spec, params, input_shape, net)
    module, _ = lower(compiled)
    return module


def lower(compiled: Compiled):
    """A valid compilation as a live module, with the source it was made from."""
    from netc.load import load_class  # torch is imported only here

    code = emit_module(compiled.graph, compiled.spec.name)
    return load_class(code, compiled.spec.stem)(), code
