"""The Python API: `compile`, `check`, `summary`, `generate_source` (torch-free) and `build`."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netc.diagnostics import Diagnostic, NetcError

if TYPE_CHECKING:  # the compiler is imported by the functions that run it, not by `import netc`
    from netc.codegen import PythonCode
    from netc.compiler import Compiled


def compile(spec: str | Path, *, input_shape: tuple[int, ...] | None = None,
            net: str | None = None, **params: Any) -> Compiled:
    """Parse, elaborate and type a spec; the result holds the graph and all diagnostics."""
    from netc.compiler import compile_spec

    return compile_spec(spec, {k: from_config(v) for k, v in params.items()},
                        input_shape=input_shape, net=net)


def check(spec: str | Path, *, input_shape: tuple[int, ...] | None = None,
          net: str | None = None, **params: Any) -> list[Diagnostic]:
    """Every diagnostic for the spec (errors and warnings); valid when none is an error
    (the shipped specs give an empty list)."""
    from netc.compiler import compile_spec

    plain = {k: from_config(v) for k, v in params.items()}
    return list(compile_spec(spec, plain, input_shape=input_shape, net=net).diagnostics)


def list_models() -> list[str]:
    """The models found by name (`netc.build("resnet50")`): the shipped specs, and those in
    the directories of `NETC_PATH`."""
    from netc.loader import list_models as found

    return found()


def from_config(value: Any) -> Any:
    """OmegaConf lists and dicts (from a Hydra config: `_target_: netc.build`) as Python's."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _compiled_or_raise(spec, params, input_shape=None, net=None, limits=None) -> Compiled:
    from netc.compiler import compile_spec

    params = {key: from_config(value) for key, value in params.items()}
    if input_shape is not None:
        input_shape = tuple(from_config(input_shape))
    compiled = compile_spec(spec, params, input_shape=input_shape, net=net,
                            limits=dict(limits) if limits else None)
    if not compiled.ok:
        raise NetcError(compiled.diagnostics, compiled.sources)
    return compiled


def summary(spec: str | Path, *, input_shape: tuple[int, ...] | None = None,
            net: str | None = None, depth: int | None = None, batch_size: int = 1,
            **params: Any):
    """Shapes, params, MACs, receptive fields and the minimum input size, computed
    statically: a `netc.report.Summary` whose `str()` is the table (raises NetcError)."""
    from netc.report import Summary

    compiled = _compiled_or_raise(spec, params, input_shape, net)
    return Summary(compiled.graph, spec=str(spec), depth=depth, batch_size=batch_size)


def generate_source(spec: str | Path, **params: Any) -> PythonCode:
    """The Python source of the module netc would build (raises NetcError on errors)."""
    from netc.codegen import emit_module

    compiled = _compiled_or_raise(spec, params)
    return emit_module(compiled.graph, compiled.spec.name)


def build(spec: str | Path, *, input_shape: tuple[int, ...] | None = None,
          net: str | None = None, weights: str | Path | Mapping | None = None,
          limits: Mapping[str, int] | None = None, optimize: bool | Iterable[str] = False,
          **params: Any):
    """The spec as an `nn.Module` (params override the spec's; raises NetcError on errors).
    `weights`, a state_dict or a file saved by torch.save, is loaded strictly: a file that
    cannot be read raises netc.files.PathError, one that does not fit netc.WeightsMismatch.
    `limits` are the CLI's `--limit`s, `memory` among them: the bytes of parameters and
    buffers the module may allocate (default 4 GiB), checked before anything is allocated.
    `optimize=True` gives the eval-only, CPU-optimised module of `netc build --optimize` (every
    default pass of netc.optimize; or a list of pass names): `weights` are the plain module's, folded
    into it; its state_dict holds the folded weights (see netc.optimize)."""
    limits = from_config(limits)
    compiled = _compiled_or_raise(spec, params, input_shape, net, limits)
    module, _ = lower(compiled, limits)
    if weights is not None:
        from netc.load import load_weights

        load_weights(module, from_config(weights))
    if optimize:
        from netc import optimize as passes

        chosen = passes.DEFAULT_PASSES if optimize is True else tuple(from_config(optimize))
        module, _, _ = passes.lower(compiled.graph, module, chosen, compiled.spec.name)
    return module


def lower(compiled: Compiled, limits: Mapping[str, int] | None = None):
    """A valid compilation as a live module, with the source it was made from; its size is
    checked against `limits["memory"]` first (NetcError E211; see netc.load.instantiate)."""
    from netc.codegen import emit_module
    from netc.load import instantiate  # torch is imported only here

    code = emit_module(compiled.graph, compiled.spec.name)
    module = instantiate(code, compiled.graph, limits, label=compiled.spec.stem,
                         sources=compiled.sources)
    return module, code
