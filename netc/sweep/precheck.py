"""The static pre-check: each variant's config compiled with netc (no torch) before any job
is launched; an invalid variant is a row with its diagnostic, never a job.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.api import from_config
from netc.sweep.config import OPTIONS, _netc_text, check_options, spec_parameters


# ---- one variant: its config -> compile_spec arguments -> a check

@dataclass
class Check:
    """One variant, checked statically."""

    status: str  # ok | invalid
    spec: Path | None = None
    error: str | None = None  # one line
    diagnostics: str | None = None  # the full rendered diagnostics
    compiled: Any = None
    stats: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # artifact, measure, bench (validated)
    usage: bool = False  # a mistake in the options or keys, not in the variant: exit 2


def _base_dir() -> Path:
    """Where relative spec paths are read from: the directory netc sweep ran in."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.cwd)
    except Exception:  # outside a Hydra job
        return Path.cwd()


def _netc_param(key: str, value, problems: list[str]):
    """A config value as a compile_spec override (strings are netc expressions)."""
    from netc.compiler import parse_override
    from netc.diagnostics import Diagnostics

    if isinstance(value, (list, tuple)):
        if _has_string(value):
            value = _netc_text(value)
        else:
            return list(value)
    if isinstance(value, str):
        diags = Diagnostics()
        expr = parse_override(key, value.strip(), diags)
        if expr is None:
            problems.append(f"{key}: cannot read `{value}` as a netc value (numbers, true/false, "
                            "lists like [3, 4, 6, 3], or a block name)")
        return expr
    if isinstance(value, dict):
        problems.append(f"{key}: a mapping is not a netc value")
        return None
    return value


def _has_string(value) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_string(v) for v in value)
    return False


def _input_shape(value, channels: int | None, problems: list[str]):
    """The `input` option: 64 (square, the spec's channels), [H, W], [C, H, W], [F], or
    text "3,64,64" / "64x64"."""
    if isinstance(value, str):
        try:
            value = [int(p) for p in value.replace("x", ",").split(",") if p.strip()]
        except ValueError:
            problems.append(f"input: cannot read `{value}` as a size (e.g. 64, [64, 64], "
                            "[3, 64, 64])")
            return None
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
        problems.append(f"input: expected a size (64, [64, 64] or [3, 64, 64]), got {value!r}")
        return None
    dims = [value, value] if isinstance(value, int) else list(value)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims) \
            or len(dims) not in (1, 2, 3):
        problems.append(f"input: expected positive integers (64, [64, 64] or [3, 64, 64]), "
                        f"got {value!r}")
        return None
    if len(dims) == 2:
        if channels is None:
            problems.append("input: the spec's input has no fixed channel count; give [C, H, W]")
            return None
        dims = [channels, *dims]
    return tuple(dims)



def check_variant(cfg) -> Check:
    """Compile one variant's config with netc (no torch): ok, or invalid with why."""
    from omegaconf import OmegaConf

    from netc.compiler import compile_spec
    from netc.diagnostics import render_text

    problems: list[str] = []
    if "spec" not in cfg or OmegaConf.is_missing(cfg, "spec"):
        return Check("invalid", error="no spec: give SPEC, spec=PATH or `spec:` in the config")
    path = Path(str(cfg.spec))
    if not path.is_absolute():
        path = _base_dir() / path
    options = check_options(cfg, problems)
    if problems:  # netc's own options are wrong: the same mistake in every variant
        return Check("invalid", spec=path, error=problems[0], diagnostics="\n".join(problems),
                     usage=True)
    if not path.is_file():
        return Check("invalid", spec=path, error=f"cannot read `{cfg.spec}`: no such file")
    net = cfg.get("net")
    info = spec_parameters(path, net)
    if info.problems:
        return Check("invalid", spec=path, error=_first_line(info.problems),
                     diagnostics=info.problems)
    params: dict[str, Any] = {}
    input_value = cfg.get("input")
    first_input = next(iter(info.inputs), None)
    for key in cfg:
        if key in OPTIONS or key in ("hydra", "defaults"):
            continue
        if OmegaConf.is_missing(cfg, key):
            problems.append(f"`{key}` has no default in the spec: give it, e.g. {key}=...")
            continue
        value = from_config(cfg[key])
        if value is None or (key == first_input and input_value is not None):
            continue
        converted = _netc_param(key, value, problems)
        if converted is not None:
            params[key] = converted
    input_shape = None
    if input_value is not None:
        input_value = from_config(input_value)
        if first_input is None:
            problems.append("input: the spec's net declares no input")
        else:
            default = info.inputs.get(first_input)
            channels = default[0] if isinstance(default, list) and len(default) == 3 else None
            own = from_config(cfg.get(first_input)) if first_input in cfg else None
            if isinstance(own, list) and len(own) == 3 and isinstance(own[0], int):
                channels = own[0]
            if channels is None:  # a computed input shape: compile once to read it
                at_default = compile_spec(path, params, net=net)
                if at_default.ok and at_default.graph.inputs:
                    channels = at_default.graph.inputs[0].shape[0]
            input_shape = _input_shape(input_value, channels, problems)
    if problems:
        return Check("invalid", spec=path, error=problems[0], diagnostics="\n".join(problems),
                     options=options)
    compiled = compile_spec(path, params, input_shape=input_shape, net=net)
    if not compiled.ok:
        errors = [d for d in compiled.diagnostics if d.is_error]
        first = errors[0] if errors else None
        one = (f"{first.code} {first.slug}: {first.message}"
               + (f" ({Path(first.span.file).name}:{first.span.line})" if first.span else "")
               if first else "invalid")
        return Check("invalid", spec=path, error=one,
                     diagnostics=render_text(compiled.diagnostics, compiled.sources),
                     options=options)
    refused = _memory_problem(compiled.graph, options)
    if refused is not None:
        first = refused.diagnostics[0]
        return Check("invalid", spec=path, error=f"{first.code} {first.slug}: {first.message}",
                     diagnostics=str(refused), options=options,
                     stats=static_stats(compiled.graph))
    return Check("ok", spec=path, compiled=compiled, stats=static_stats(compiled.graph),
                 options=options)


def _memory_limits(options: dict) -> dict | None:
    memory = options["bench"].get("memory")
    return None if memory is None else {"memory": memory}


def _memory_problem(graph, options: dict):
    """The NetcError (E211) of a variant whose job would allocate past the memory limit:
    building the model (an artifact or a measurement), a forward pass at `batch_size`, a
    training step at `train_batch_size`; None when it fits or the job builds nothing."""
    from netc.analysis import check_memory
    from netc.diagnostics import NetcError

    if options["artifact"] is None and options["measure"] == "none":
        return None
    bench, limits = options["bench"], _memory_limits(options)
    try:
        check_memory(graph, limits)
        if options["measure"] in ("latency", "all"):
            check_memory(graph, limits, batch=bench["batch_size"])
            if bench.get("train", True):
                check_memory(graph, limits, batch=bench["train_batch_size"], train=True)
        if options["measure"] in ("train", "all"):
            check_memory(graph, limits, batch=options["train"]["batch_size"], train=True)
    except NetcError as error:
        return error
    return None


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), text)


def _dims(shape) -> str | None:
    from netc.shapes import Multi

    if shape is None:
        return None
    if isinstance(shape, Multi):
        return ",".join(_dims(s) for s in shape)
    return "x".join(str(d) for d in shape)


def static_stats(graph) -> dict:
    """Params, buffers, MACs, shapes, minimum input and receptive field, from the graph.

    The minimum input and the receptive field come from `netc.analysis.analyse` (the
    analysis behind `netc summary`); `rf` is the field of the last spatial layer through
    its spatial paths (`rf_local`, its height where it is not square: see `rf_hw`)."""
    from netc import analysis

    total = analysis.totals(graph)
    stats = {
        "params": total.params, "buffers": total.buffers, "macs": total.macs,
        "input": ",".join(_dims(i.shape) for i in graph.inputs),
        "output": ",".join(_dims(graph.node(o).shape) for o in graph.outputs),
        "min_input": None, "min_input_note": None, "rf": None, "rf_hw": None, "rf_jump": None,
    }
    analyse = getattr(analysis, "analyse", None)
    if analyse is None:  # an older netc without the analysis: the fields stay empty
        return stats
    result = analyse(graph)
    if result.min_input is not None:
        stats["min_input"] = _dims(result.min_input.shape)
        stats["min_input_note"] = result.min_input.describe()
    field_node = result.largest_local_field()
    if field_node is not None:
        rf = field_node.rf_local
        stats["rf"] = int(rf[0])
        stats["rf_hw"] = _dims(rf)
        if field_node.jump is not None:
            stats["rf_jump"] = int(field_node.jump[0])
    return stats



def expand(sweeper, arguments: list[str]) -> list[list[str]]:
    """The variants, as Hydra's basic sweeper expands them: `hydra.sweeper.params` from
    the config, then the command line's overrides, parsed by Hydra's own parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params_conf = sweeper._parse_config() + list(arguments)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(params_conf)
    return [list(v) for v in sweeper.split_arguments(overrides, None)[0]]


def _misspelt_key(error: Exception) -> bool:
    text = " ".join(str(error).split())
    return "not in struct" in text or "Could not override" in text


def _explain_config_error(error: Exception, config) -> str:
    """Hydra's composition error in one line, with a did-you-mean for a misspelt key."""
    text = " ".join(str(error).split())
    if "not in struct" in text or "Could not override" in text:
        key = text.split("'")[1] if "'" in text else ""
        known = [k for k in config if k != "hydra"]
        close = difflib.get_close_matches(key, known, n=1)
        return (f"`{key}` is not a parameter of the spec nor a netc option"
                + (f"; did you mean `{close[0]}`?" if close else
                   f" (known: {', '.join(known)})"))
    return text



def _checked(job_cfg) -> Check:
    """check_variant, with a config OmegaConf cannot read (an interpolation in a config
    file that does not resolve) as an invalid variant, not a traceback."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return check_variant(job_cfg)
    except OmegaConfBaseException as error:
        return Check("invalid", error=" ".join(str(error).split("\n")[0].split()))


def check_overrides(config, loader, overrides: list[str]) -> Check:
    """Compose one variant's config as Hydra will (the sweep's config plus its overrides)
    and check it; a key Hydra cannot compose (misspelt) is a usage error."""
    from omegaconf import open_dict

    try:
        job_cfg = loader.load_sweep_config(config, list(overrides))
    except Exception as error:  # Hydra could not compose it: a misspelt key, a bad value
        task_keys = [k for k in config if k != "hydra"]
        return Check("invalid", error=_explain_config_error(error, task_keys),
                     usage=_misspelt_key(error))
    with open_dict(job_cfg):
        del job_cfg["hydra"]
    return _checked(job_cfg)
