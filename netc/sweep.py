"""`netc sweep`: Hydra multiruns over variants of a spec, one row and one job directory each.

    netc sweep specs/resnet18.net 'layers=[2,2,2,2],[3,4,6,3]' width_per_group=64,128
    netc sweep specs/resnet18.net image='[3,64,64]','[3,128,128]' hydra/launcher=joblib
    netc sweep --config-dir configs --config-name resnet_depth_width measure=latency
    netc sweep --report multirun/2026-05-01/12-00-00

How Hydra is embedded (see ../shared/ANCHORS.md section 8):

- The spec's parameters (and its inputs) become the primary config, registered in Hydra's
  ConfigStore as `netc_sweep` before Hydra starts, next to netc's own options (`spec`,
  `net`, `input`, `artifact`, `measure`, `bench.*`). Overrides are therefore Hydra's, and a
  misspelt parameter is Hydra's "not in struct" error.
- `netc sweep` hands its arguments to a real `@hydra.main` app (`--multirun` first, then any
  `--config-dir/--config-name`, then the overrides), so Hydra's sweeper, launchers
  (`hydra/launcher=basic|joblib|submitit_local|submitit_slurm`), output directories, logging
  and `.hydra/` records all work as in any Hydra app.
- The sweeper is `hydra/sweeper=netc` (`hydra_plugins/netc_sweeper`): Hydra's basic
  sweeper (it expands overrides with Hydra's own parser, `hydra.sweeper.params` included),
  which composes each variant's config, checks it with netc (no torch), records invalid
  variants as rows and launches only the valid ones. `hydra.sweeper.dry_run=true`
  (`--dry-run`) stops after the check.
- Each job (`job`, run by the launcher: in-process, in joblib workers, or as submitit jobs)
  writes `result.json` into its Hydra output directory; the sweep's table is rebuilt from
  those files (so `--report DIR` works after a cluster run too): `results.csv`,
  `results.json` and `results.png` in the sweep directory.

Nothing here imports torch until a job builds or measures a model.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import difflib
import json
import logging
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.api import from_config

CONFIG_NAME = "netc_sweep"
RESULT_FILE = "result.json"
VARIANTS_FILE = "variants.json"
OPTIONS = ("spec", "net", "input", "artifact", "measure", "bench")
MEASURES = ("none", "latency")
ARTIFACTS = {"torchscript": ".pt", "export": ".pt2", "py": ".py"}
BENCH_DEFAULTS = {
    "batch_size": 1,  # forward latency batch
    "warmup": 3,  # untimed forwards first
    "runs": 10,  # timed forwards; the median is reported
    "train": True,  # also time one training step (forward + backward)
    "train_batch_size": 2,  # BatchNorm needs more than one sample per channel to train
    "train_runs": 2,  # timed training steps after one untimed one; the median is reported
    "threads": None,  # torch.set_num_threads in the job (null: torch's default)
    # bytes a job may allocate: the model, and a measurement's batch (inputs, activations,
    # gradients), estimated from the graph before anything is allocated (null: 4 GiB)
    "memory": None,
}

# The columns of results.csv / results.json, in order.
COLUMNS = ("variant", "job", "overrides", "spec", "status", "params", "buffers", "macs",
           "input", "output", "min_input", "rf", "rf_jump", "latency_ms", "train_ms",
           "train_peak_mb", "batch_size", "train_batch_size", "threads", "artifact", "job_s",
           "error")
NUMERIC = {"variant", "job", "params", "buffers", "macs", "rf", "rf_jump", "latency_ms",
           "train_ms", "train_peak_mb", "batch_size", "train_batch_size", "threads", "job_s"}

log = logging.getLogger("netc.sweep")


# ---- the spec's parameters as a config

MISSING = "???"  # OmegaConf's mandatory value: a parameter without a default


@dataclass
class SpecParams:
    """A spec's net parameters and inputs as config values (see `config_value`)."""

    path: Path
    net: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # parameter -> config value
    inputs: dict[str, Any] = field(default_factory=dict)  # input name -> [C, H, W] or None
    problems: str | None = None  # rendered diagnostics when the spec cannot be read


def _refs(expr) -> set[str]:
    """The names an expression reads (to tell a literal default from a derived one)."""
    from netc import ast

    found: set[str] = set()

    def walk(node):
        if isinstance(node, ast.Ref):
            found.add(node.name)
        if isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:
                walk(getattr(node, name))

    walk(expr)
    return found


_PARAMS_CACHE: dict[tuple, SpecParams] = {}


def spec_parameters(spec: str | Path, net: str | None = None) -> SpecParams:
    """`read_spec_parameters`, once per spec file version (a sweep checks many variants of
    one spec)."""
    path = Path(spec).resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (path, net, stamp)
    if key not in _PARAMS_CACHE:
        _PARAMS_CACHE[key] = read_spec_parameters(spec, net)
    return _PARAMS_CACHE[key]


def read_spec_parameters(spec: str | Path, net: str | None = None) -> SpecParams:
    """The parameters of the spec's net with their defaults, as Hydra will show them.

    A default that is a constant (or given by a `net x = Y(...)` alias) is its value; a
    default computed from other parameters (`num_init_features = 2 * growth_rate`) is
    `None`, meaning "the spec's own default", so that overriding `growth_rate` still
    moves it; a parameter without a default is mandatory (`???`)."""
    from netc import ast
    from netc.diagnostics import Diagnostics, render_text
    from netc.elaborate import Elaborator, Env
    from netc.loader import load_program

    path = Path(spec)
    result = SpecParams(path)
    diags = Diagnostics()
    program = load_program(path, diags)
    if diags.has_errors or program.root is None:
        result.problems = render_text(diags, program.sources)
        return result
    root = program.root
    if net is None:
        chosen = root.ast.nets[-1] if root.ast.nets else None
    else:
        chosen = root.nets.get(net)
    if chosen is None:
        result.problems = f"{path}: no net" + (f" named `{net}`" if net else "")
        return result
    result.net = chosen.name
    elaborator = Elaborator(program, Diagnostics())
    defn, module = chosen, root.owner.get(chosen.name, root)
    given: dict[str, Any] = {}
    seen = set()
    while isinstance(defn, ast.NetAlias) and defn.name not in seen:
        seen.add(defn.name)
        env = Env(module)
        target = module.nets.get(defn.target)
        if target is None or isinstance(target, ast.NetAlias) and target.name in seen:
            result.problems = f"{path}: net `{defn.target}` not found"
            return result
        names = [p.name for p in getattr(target, "params", ())]
        given = {}
        try:
            for name, expr in zip(names, defn.args):
                given[name] = elaborator.eval(expr, env)
            for kw in defn.kwargs:
                given[kw.name] = elaborator.eval(kw.value, env)
        except Exception:  # an alias argument netc cannot evaluate alone
            given = {}
        module = module.owner.get(defn.target, module)
        defn = target
    if not isinstance(defn, ast.BlockDef):
        result.problems = f"{path}: cannot resolve net `{chosen.name}`"
        return result
    names = {p.name for p in defn.params}
    values: dict[str, Any] = {}
    for param in defn.params:
        if param.name in given:
            values[param.name] = config_value(given[param.name])
        elif param.default is None:
            values[param.name] = MISSING
        elif _refs(param.default) & names:
            values[param.name] = None  # derived from other parameters: the spec decides
        else:
            try:
                values[param.name] = config_value(elaborator.eval(param.default, Env(module)))
            except Exception:  # left to the spec
                values[param.name] = None
    for stmt in defn.body:
        if isinstance(stmt, ast.InputDecl):
            shape = None
            if not (_refs(stmt.shape) & names):
                try:
                    shape = config_value(elaborator.eval(stmt.shape, Env(module)))
                except Exception:
                    shape = None
            result.inputs[stmt.name] = shape
    result.values = values
    return result


def config_value(value):
    """A netc value as a config value: numbers, booleans and lists stay themselves; a block
    becomes its name and a string its netc literal (both are read back as netc expressions,
    as `-D` values are); anything else is None (the spec's own default)."""
    from netc.elaborate import BlockValue

    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, BlockValue):
        return value.defn.name
    if isinstance(value, (list, tuple)):
        items = [config_value(item) for item in value]
        if any(item is None and orig is not None for item, orig in zip(items, value)):
            return None
        if any(isinstance(item, str) for item in items):
            return _netc_text(items)
        return items
    return None


def _netc_text(value) -> str:
    """A config value (strings being netc expressions already) as netc expression text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_netc_text(item) for item in value) + "]"
    return str(value)


def primary_config(specs: list[SpecParams], spec_default: str | None) -> dict:
    """netc_sweep: netc's options and the union of the specs' parameters. A parameter
    whose default differs between the swept specs (or that not all of them have) is null:
    each spec then keeps its own."""
    merged: dict[str, Any] = {}
    for info in specs:
        for name, value in list(info.values.items()) + list(info.inputs.items()):
            merged.setdefault(name, [])
            merged[name].append(value)
    params = {}
    for name, values in merged.items():
        same = len(values) == len(specs) and all(v == values[0] for v in values)
        params[name] = values[0] if same else None
    clash = sorted(set(params) & (set(OPTIONS) | {"hydra", "defaults"}))
    if clash:
        from netc.cli import UsageError
        raise UsageError(f"the spec's parameter `{clash[0]}` has the name of a netc sweep "
                         f"option ({', '.join(OPTIONS)}); rename it to sweep it")
    node = {
        "defaults": [{"override hydra/sweeper": "netc"}, "_self_"],
        "spec": escape(spec_default) if spec_default is not None else MISSING,
        "net": None,
        **escape(params),  # spec strings are data (see `escape`)
        "input": None,  # the first input's size: 64, [64, 48], [3, 64, 64] or "3,64,64"
        "artifact": False,  # true (TorchScript), or torchscript / export / py
        "measure": "none",  # latency: CPU forward latency and one training step
        "bench": dict(BENCH_DEFAULTS),
    }
    return node


_INTERPOLATION = None


def escape(value):
    """A value as data for OmegaConf: every `${` in its strings escaped (`\\${`, with the
    backslashes before it doubled), so that OmegaConf reads back exactly the text and never
    resolves it (`${oc.env:SECRET}` would read the environment, `${foo}` fails). Lists and
    dicts are escaped throughout; other values are returned as they are."""
    global _INTERPOLATION
    if isinstance(value, str):
        if "${" not in value:
            return value
        if _INTERPOLATION is None:
            import re
            _INTERPOLATION = re.compile(r"(\\*)\$\{")
        return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, (list, tuple)):
        return [escape(item) for item in value]
    if isinstance(value, dict):
        return {key: escape(item) for key, item in value.items()}
    return value


def escape_override(text: str) -> str:
    """A command-line override with its value escaped (see `escape`): sweep values are
    data. Hydra's own settings (`hydra.*`, `hydra/...`) keep their interpolations
    (`hydra.sweep.dir=runs/${now:%H-%M}` is Hydra's documented use)."""
    key, sep, value = text.partition("=")
    if not sep or key.lstrip("+~").startswith("hydra"):
        return text
    return key + sep + escape(value)


def register_config(node: dict, name: str = CONFIG_NAME) -> None:
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name=name, node=OmegaConf.create(node), provider="netc")


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


def _options(cfg, problems: list[str]) -> dict:
    artifact = cfg.get("artifact", False)
    if artifact is True:
        artifact = "torchscript"
    if artifact in (False, None, "none", "false"):
        artifact = None
    elif artifact not in ARTIFACTS:
        problems.append(f"artifact: expected true/false or one of {', '.join(ARTIFACTS)}, "
                        f"got {artifact!r}")
    measure = cfg.get("measure", "none")
    if measure in (None, False):
        measure = "none"
    if measure not in MEASURES:
        problems.append(f"measure: expected one of {', '.join(MEASURES)}, got {measure!r}")
    bench = {**BENCH_DEFAULTS, **(from_config(cfg.get("bench")) or {})}
    for key, value in bench.items():
        if key == "train":
            if not isinstance(value, bool):
                problems.append(f"bench.train: expected true or false, got {value!r}")
        elif key not in BENCH_DEFAULTS:
            problems.append(f"bench.{key}: unknown (known: {', '.join(BENCH_DEFAULTS)})")
        elif not (value is None and key in ("threads", "memory")) and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
                or value == 0 and key in ("batch_size", "runs", "train_batch_size",
                                          "train_runs", "threads")):
            problems.append(f"bench.{key}: expected a positive integer, got {value!r}")
    return {"artifact": artifact, "measure": measure, "bench": bench}


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
    options = _options(cfg, problems)
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
        if options["measure"] == "latency":
            check_memory(graph, limits, batch=bench["batch_size"])
            if bench.get("train", True):
                check_memory(graph, limits, batch=bench["train_batch_size"], train=True)
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


# ---- the job: one variant, in whatever process the launcher gives it

def job(cfg) -> dict:
    """Hydra's task function: check, record, optionally build and measure one variant.
    It never raises: a failing variant is a row with its error."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    row: dict[str, Any] = {"job": hc.job.num, "overrides": list(hc.overrides.task),
                           "job_dir": str(out_dir)}
    start = time.perf_counter()
    try:
        row.update(evaluate_variant(cfg, out_dir))
    except Exception as error:  # a bug or an environment problem: a row, not a crash
        log.exception("variant failed")
        row.update(status="failed", error=f"{type(error).__name__}: {error}")
    row["job_s"] = round(time.perf_counter() - start, 3)
    _write_json(out_dir / RESULT_FILE, row)
    log.info("%s", _one_line(row))
    return row


def evaluate_variant(cfg, out_dir: Path) -> dict:
    check = check_variant(cfg)
    row: dict[str, Any] = {"spec": str(check.spec) if check.spec else None,
                           "status": check.status, "error": check.error,
                           "diagnostics": check.diagnostics, **check.stats}
    if check.status != "ok":
        return row
    opts = check.options
    if opts["artifact"] is None and opts["measure"] == "none":
        return row
    from netc.api import lower
    from netc.load import write_artifact

    graph = check.compiled.graph
    module, code = lower(check.compiled, _memory_limits(opts))  # sizes checked first
    if opts["artifact"]:
        path = out_dir / (check.spec.stem + ARTIFACTS[opts["artifact"]])
        write_artifact(module, code, graph, opts["artifact"], path)
        row["artifact"] = str(path)
    if opts["measure"] == "latency":
        row.update(measure(module, graph, opts["bench"]))
    return row


@contextlib.contextmanager
def _quiet_fd2():
    """Silence file descriptor 2 for a moment (the profiler's C++ start/stop chatter)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(step, torch) -> int | None:
    """The peak of tensor memory allocated during `step()` above what was live before it,
    in bytes, from the allocation events of torch's profiler (CPU); None if unavailable."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_fd2():
        prof.__enter__()
    try:
        step()
    finally:
        with _quiet_fd2():
            prof.__exit__(None, None, None)
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except Exception:  # a torch without these (private) results
        return None
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def measure(module, graph, bench: dict) -> dict:
    """CPU forward latency (median of `runs` after `warmup`) and one training step
    (forward + backward on random data, cross-entropy on logits: the median time of
    `train_runs` steps after one untimed step, and the peak tensor memory of a step above
    the model and its inputs)."""
    import torch

    threads = bench.get("threads")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        result = {"batch_size": bench["batch_size"], "threads": torch.get_num_threads()}
        shapes = [tuple(i.shape) for i in graph.inputs]
        module.eval()
        inputs = [torch.randn(bench["batch_size"], *s) for s in shapes]
        times = []
        with torch.inference_mode():
            for _ in range(bench["warmup"]):
                module(*inputs)
            for _ in range(bench["runs"]):
                tic = time.perf_counter()
                module(*inputs)
                times.append(time.perf_counter() - tic)
        result["latency_ms"] = round(statistics.median(times) * 1e3, 3)
        result["latency_runs"] = len(times)
        if bench.get("train", True):
            result.update(_train_step(module, shapes, bench, torch))
        return result
    finally:
        torch.set_num_threads(old_threads)


def _train_step(module, shapes, bench, torch) -> dict:
    batch = bench["train_batch_size"]
    module.train()
    inputs = [torch.randn(batch, *s) for s in shapes]

    def step():
        outputs = module(*inputs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = 0
        for out in outputs:
            if out.dim() == 2:  # logits: cross-entropy against random classes
                target = torch.randint(0, out.shape[1], (out.shape[0],))
                loss = loss + torch.nn.functional.cross_entropy(out, target)
            else:
                loss = loss + out.float().square().mean()
        loss.backward()
        for param in module.parameters():
            param.grad = None

    try:  # the untimed first step, under the profiler: its allocations give the peak
        peak = peak_memory(step, torch)
    except Exception:
        log.warning("no memory profile of the training step", exc_info=True)
        peak = None
        step()
    times = []
    for _ in range(bench["train_runs"]):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    module.eval()
    return {"train_ms": round(statistics.median(times) * 1e3, 3),
            "train_batch_size": batch,
            "train_peak_mb": round(peak / 2 ** 20, 1) if peak is not None else None}


# ---- the sweeper's work (called by hydra_plugins.netc_sweeper.NetcSweeper.sweep)

@dataclass
class Variant:
    index: int
    overrides: list[str]
    status: str = "ok"
    error: str | None = None
    diagnostics: str | None = None
    stats: dict = field(default_factory=dict)
    spec: str | None = None
    job: int | None = None
    job_dir: str | None = None

    def row(self) -> dict:
        return {"variant": self.index, "job": self.job, "overrides": self.overrides,
                "spec": self.spec, "status": self.status, "error": self.error,
                "diagnostics": self.diagnostics, "job_dir": self.job_dir, **self.stats}


@dataclass
class Outcome:
    """What the last sweep in this process did (Hydra drops the sweeper's return value)."""

    sweep_dir: Path
    variants: list[Variant]
    dry_run: bool
    launcher: str | None = None
    seconds: float = 0.0


class _State:
    outcome: Outcome | None = None
    console = None  # set by the CLI


STATE = _State()


def expand(sweeper, arguments: list[str]) -> list[list[str]]:
    """The variants, as Hydra's basic sweeper expands them: `hydra.sweeper.params` from
    the config, then the command line's overrides, parsed by Hydra's own parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params_conf = sweeper._parse_config() + list(arguments)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides(params_conf)
    return [list(v) for v in sweeper.split_arguments(overrides, None)[0]]


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


def run_sweeper(sweeper, arguments: list[str]):
    """Expand, check every variant statically, record the invalid ones, launch the valid
    ones with the configured launcher, and leave the outcome in `STATE`."""
    from omegaconf import OmegaConf, open_dict

    config, loader = sweeper.config, sweeper.hydra_context.config_loader
    sweep_dir = Path(str(config.hydra.sweep.dir))
    launcher = config.hydra.runtime.choices.get("hydra/launcher")
    tic = time.perf_counter()
    variants = []
    task_keys = [k for k in config if k != "hydra"]
    for index, overrides in enumerate(expand(sweeper, arguments)):
        variant = Variant(index, overrides)
        try:
            job_cfg = loader.load_sweep_config(config, list(overrides))
        except Exception as error:  # Hydra could not compose it: a misspelt key, a bad value
            variant.status, variant.error = "invalid", _explain_config_error(error, task_keys)
        else:
            with open_dict(job_cfg):
                del job_cfg["hydra"]
            check = _checked(job_cfg)
            variant.status, variant.error = check.status, check.error
            variant.diagnostics, variant.stats = check.diagnostics, check.stats
            variant.spec = str(check.spec) if check.spec else None
        variants.append(variant)
    outcome = Outcome(sweep_dir, variants, sweeper.dry_run, launcher)
    STATE.outcome = outcome
    valid = [v for v in variants if v.status == "ok"]
    print_variants(variants, time.perf_counter() - tic, launcher, sweeper.dry_run, sweep_dir)
    if sweeper.dry_run:
        return []

    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    for number, variant in enumerate((v for v in variants if v.status != "ok"), len(valid)):
        _record_invalid(sweeper, variant, number, sweep_dir)
    _write_variants(sweep_dir, variants)
    progress = Progress(sweep_dir, len(valid))
    progress.start()
    returns = []
    try:
        start = 0
        chunks = sweeper.split_overrides_to_chunks([v.overrides for v in valid],
                                                   sweeper.max_batch_size) if valid else []
        for chunk in chunks:  # (Hydra's splitter asserts on an empty list: all invalid)
            results = sweeper.launcher.launch(chunk, initial_job_idx=start)
            for variant, result in zip(valid[start:start + len(chunk)], results):
                _record_launched(variant, result, start)
                start += 1
            returns.append(results)
    finally:
        progress.stop()
        outcome.seconds = time.perf_counter() - tic
        _write_variants(sweep_dir, variants)
    return returns


def _checked(job_cfg) -> Check:
    """check_variant, with a config OmegaConf cannot read (an interpolation in a config
    file that does not resolve) as an invalid variant, not a traceback."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return check_variant(job_cfg)
    except OmegaConfBaseException as error:
        return Check("invalid", error=" ".join(str(error).split("\n")[0].split()))


def _record_launched(variant: Variant, result, number: int) -> None:
    from hydra.core.utils import JobStatus

    variant.job = number
    try:
        variant.job_dir = str(result.hydra_cfg.hydra.runtime.output_dir)
    except Exception:
        pass
    if getattr(result, "status", None) is JobStatus.FAILED:  # the job raised past `job`
        variant.status = "failed"
        variant.error = f"{type(result._return_value).__name__}: {result._return_value}"


def _record_invalid(sweeper, variant: Variant, number: int, sweep_dir: Path) -> None:
    """An invalid variant's directory: its overrides, its config (when Hydra could compose
    it) and its row; nothing is launched for it."""
    from omegaconf import OmegaConf, open_dict

    variant.job = number
    job_dir = sweep_dir / str(number)
    task_cfg = None
    try:
        cfg = sweeper.hydra_context.config_loader.load_sweep_config(sweeper.config,
                                                                    list(variant.overrides))
        with open_dict(cfg):
            cfg.hydra.job.num = number
            cfg.hydra.job.id = f"{cfg.hydra.job.name}_{number}"
        try:
            subdir = str(cfg.hydra.sweep.subdir)
            job_dir = sweep_dir / subdir
        except Exception:  # a subdir that needs a running job to resolve
            pass
        task_cfg = copy.deepcopy(cfg)
        with open_dict(task_cfg):
            del task_cfg["hydra"]
    except Exception:
        pass
    hydra_dir = job_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(list(variant.overrides)), hydra_dir / "overrides.yaml")
    if task_cfg is not None:
        OmegaConf.save(task_cfg, hydra_dir / "config.yaml")
    variant.job_dir = str(job_dir)
    _write_json(job_dir / RESULT_FILE, {**variant.row(), "launched": False})


def _write_variants(sweep_dir: Path, variants: list[Variant]) -> None:
    _write_json(sweep_dir / VARIANTS_FILE, [v.row() for v in variants])


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temp, path)


# ---- progress while jobs run

class Progress:
    """A progress line on stderr, from the `result.json` files the jobs write (so it works
    with every launcher): redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, sweep_dir: Path, total: int, stream=None, interval: float = 0.5):
        self.sweep_dir, self.total = sweep_dir, total
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netc-sweep-progress",
                                        daemon=True)
        self._seen: dict[Path, str] = {}
        self._last = None
        self._start = time.perf_counter()

    def start(self) -> None:
        if self.total:
            self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._draw(final=True)

    def _count(self) -> tuple[int, int]:
        for path in self.sweep_dir.rglob(RESULT_FILE):
            if path not in self._seen:
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if data.get("launched") is False:
                    self._seen[path] = "skip"
                else:
                    self._seen[path] = data.get("status", "?")
        statuses = [s for s in self._seen.values() if s != "skip"]
        return len(statuses), sum(s != "ok" for s in statuses)

    def _draw(self, final: bool = False) -> None:
        done, failed = self._count()
        elapsed = time.perf_counter() - self._start
        line = (f"netc sweep: {done}/{self.total} jobs done"
                + (f", {failed} not ok" if failed else "") + f" ({elapsed:.0f} s)")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
            self.stream.flush()
        elif (done, failed) != self._last or final and self._last is None:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last = (done, failed)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._draw()
            except Exception:  # progress is a courtesy; never let it break the sweep
                pass


# ---- results: rows from a sweep directory, the table, CSV / JSON, the plot

def collect(sweep_dir: Path) -> list[dict]:
    """One row per variant, from `variants.json` (the expansion and the static check) and
    each job directory's `result.json`; a job directory without one is `missing` (it
    crashed, was killed, or still runs). Works on plain Hydra multirun directories of
    netc jobs too (without `variants.json`)."""
    sweep_dir = Path(sweep_dir)
    variants = []
    if (sweep_dir / VARIANTS_FILE).is_file():
        variants = json.loads((sweep_dir / VARIANTS_FILE).read_text())
    jobs: dict[tuple, dict] = {}
    for overrides_file in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        result = job_dir / RESULT_FILE
        if result.is_file():
            try:
                row = json.loads(result.read_text())
            except ValueError:
                row = {"status": "missing", "error": "unreadable result.json"}
        else:
            row = {"status": "missing", "error": "no result.json (job crashed, killed or "
                                                 "still running)"}
        if "overrides" not in row or not row.get("overrides") and row["status"] == "missing":
            row["overrides"] = _read_overrides(overrides_file)
        row.setdefault("job_dir", str(job_dir))
        if row.get("job") is None and job_dir.name.isdigit():
            row["job"] = int(job_dir.name)
        jobs[tuple(row.get("overrides") or ())] = row
    rows = []
    for variant in variants:
        key = tuple(variant.get("overrides") or ())
        row = jobs.pop(key, None)
        if row is None:
            row = dict(variant)
            if row.get("status") == "ok":
                row.update(status="missing", error="the job left no directory")
        else:
            row = {**variant, **{k: v for k, v in row.items() if v is not None}}
        row["variant"] = variant.get("variant")
        rows.append(row)
    for row in sorted(jobs.values(), key=lambda r: (r.get("job") is None, r.get("job") or 0)):
        row.setdefault("variant", len(rows))
        rows.append(row)
    # every column in every row (None where it does not apply), then the rest
    return [{**{c: row.get(c) for c in COLUMNS}, **row} for row in rows]


def _read_overrides(path: Path) -> list[str]:
    from omegaconf import OmegaConf

    try:
        return [str(o) for o in OmegaConf.load(path)]
    except Exception:
        return []


def sort_rows(rows: list[dict], key: str | None) -> list[dict]:
    """Rows sorted by a column (`-column`: descending); empty values last either way."""
    if not key:
        return rows
    descending = key.startswith("-")
    column = key.lstrip("-")
    if column not in COLUMNS:
        from netc.cli import UsageError

        close = difflib.get_close_matches(column, COLUMNS, n=1)
        raise UsageError(f"--sort: no column `{column}`"
                         + (f"; did you mean `{close[0]}`?" if close else "")
                         + f" (columns: {', '.join(COLUMNS)})")

    def value(row):
        v = row.get(column)
        if isinstance(v, list):
            v = " ".join(map(str, v))
        if column == "rf" and v is None:
            return None
        return v

    present = [r for r in rows if value(r) is not None]
    absent = [r for r in rows if value(r) is None]
    numeric = all(isinstance(value(r), (int, float)) for r in present)
    present.sort(key=(lambda r: value(r)) if numeric else (lambda r: str(value(r))),
                 reverse=descending)
    return present + absent


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    if value is None:
        return ""
    if column == "overrides":
        return " ".join(value) if isinstance(value, list) else str(value)
    return str(value)


def write_results(rows: list[dict], sweep_dir: Path) -> tuple[Path, Path]:
    sweep_dir = Path(sweep_dir)
    csv_path, json_path = sweep_dir / "results.csv", sweep_dir / "results.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_cell(row, c) for c in COLUMNS])
    _write_json(json_path, {"columns": list(COLUMNS), "rows": rows})
    return csv_path, json_path


def _human(value) -> str:
    from netc.analysis import human

    return human(value) if isinstance(value, (int, float)) else ""


def _one_line(row: dict) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('error')}"
    text = f"ok: {_human(row.get('params'))} params, {_human(row.get('macs'))} MACs"
    if row.get("latency_ms") is not None:
        text += f", forward {row['latency_ms']:.2f} ms"
    if row.get("train_ms") is not None:
        text += f", train step {row['train_ms']:.1f} ms"
    return text


def _console():
    if STATE.console is not None:
        return STATE.console
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(highlight=False, width=None if tty else 200, soft_wrap=not tty)


def _split_override(text: str) -> tuple[str, str]:
    key, _, value = str(text).partition("=")
    return key, value


def labels(override_lists: list[list[str]]) -> tuple[list[str], list[str]]:
    """Each variant's label (the overrides that differ between variants) and the overrides
    all variants share (said once, in the title)."""
    parsed = [dict(_split_override(o) for o in (overrides or [])) for overrides in override_lists]
    keys: list[str] = []
    for item in parsed:
        keys += [k for k in item if k not in keys]
    common = [k for k in keys if len(parsed) > 1 and all(k in p for p in parsed)
              and len({p[k] for p in parsed}) == 1]
    varying = [k for k in keys if k not in common]
    names = [" ".join(f"{k}={p[k]}" for k in varying if k in p) or "(defaults)" for p in parsed]
    return names, [f"{k}={parsed[0][k]}" for k in common]


def print_variants(variants: list[Variant], seconds: float, launcher: str | None,
                   dry_run: bool, sweep_dir: Path) -> None:
    """The expansion with each variant's static status (before anything launches)."""
    from rich.table import Table

    bad = [v for v in variants if v.status != "ok"]
    console = _console()
    names, common = labels([v.overrides for v in variants])
    table = Table(title=f"{len(variants)} variants, {len(variants) - len(bad)} valid, "
                        f"{len(bad)} invalid (checked in {seconds:.2f} s)"
                        + (f"; all with {' '.join(common)}" if common else ""),
                  title_justify="left")
    for name, justify in (("#", "right"), ("variant", "left"), ("status", "left"),
                          ("params", "right"), ("MACs", "right"), ("input", "left"),
                          ("output", "left"), ("min input", "left"), ("error", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for v, name in zip(variants, names):
        s = v.stats
        table.add_row(str(v.index), name,
                      "[green]ok[/]" if v.status == "ok" else f"[red]{v.status}[/]",
                      _human(s.get("params")), _human(s.get("macs")), s.get("input") or "",
                      s.get("output") or "",
                      s.get("min_input") or "", v.error or "")
    console.print(table)
    if dry_run:
        console.print("dry run: nothing launched")
    elif bad:
        console.print(f"{len(bad)} invalid variant(s) not launched; launching "
                      f"{len(variants) - len(bad)} with hydra/launcher={launcher} into {sweep_dir}")
    else:
        console.print(f"launching {len(variants)} with hydra/launcher={launcher} into {sweep_dir}")


def print_table(rows: list[dict], title: str = "") -> None:
    from rich.table import Table

    console = _console()
    measured = any(r.get("latency_ms") is not None for r in rows)
    trained = any(r.get("train_ms") is not None for r in rows)
    columns = [("#", "variant", "right"), ("job", "job", "right"),
               ("variant", "overrides", "left"), ("status", "status", "left"),
               ("params", "params", "right"), ("MACs", "macs", "right"),
               ("input", "input", "left"), ("output", "output", "left"),
               ("min input", "min_input", "left"), ("RF", "rf", "right")]
    if measured:
        columns += [("forward ms", "latency_ms", "right")]
    if trained:
        columns += [("train ms", "train_ms", "right"), ("train MB", "train_peak_mb", "right")]
    if any(r.get("artifact") for r in rows):
        columns += [("artifact", "artifact", "left")]
    columns += [("error", "error", "left")]
    names, common = labels([r.get("overrides") or [] for r in rows])
    if common:
        title = (title + "; " if title else "") + "all with " + " ".join(common)
    table = Table(title=title or None, title_justify="left")
    for name, _, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    for row, label in zip(rows, names):
        cells = []
        for _, key, _ in columns:
            value = row.get(key)
            if key in ("params", "macs"):
                cells.append(_human(value))
            elif key == "overrides":
                cells.append(label)
            elif key == "status":
                cells.append("[green]ok[/]" if value == "ok" else f"[red]{value}[/]")
            elif key == "artifact" and value:
                cells.append(Path(value).name)
            elif isinstance(value, float):
                cells.append(f"{value:.2f}")
            else:
                cells.append("" if value is None else str(value))
        table.add_row(*cells)
    console.print(table)


def plot(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """MACs against params, one point per valid variant (numbered), coloured by forward
    latency when it was measured. None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    points = [r for r in rows if r.get("status") == "ok" and r.get("params") and r.get("macs")]
    fig, ax = plt.subplots(figsize=(7, 5 + 0.12 * min(len(rows), 16)), dpi=120)
    if points:
        xs = [r["params"] / 1e6 for r in points]
        ys = [r["macs"] / 1e9 for r in points]
        latency = [r.get("latency_ms") for r in points]
        if all(v is not None for v in latency):
            sc = ax.scatter(xs, ys, c=latency, cmap="viridis", s=60, edgecolors="black")
            fig.colorbar(sc, ax=ax, label=f"forward latency (ms, batch "
                                          f"{points[0].get('batch_size', 1)}, CPU)")
        else:
            ax.scatter(xs, ys, s=60, color="tab:blue", edgecolors="black")
        for r, x, y in zip(points, xs, ys):
            ax.annotate(str(r.get("variant")), (x, y), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        names, _ = labels([r.get("overrides") or [] for r in points])
        if len(points) <= 16:
            key = "\n".join(f"{r.get('variant')}: {name}" for r, name in zip(points, names))
            fig.text(0.01, 0.01, key, fontsize=7, va="bottom", family="monospace")
            fig.subplots_adjust(bottom=0.12 + 0.022 * len(points))
        if max(xs) / max(min(xs), 1e-12) > 30:
            ax.set_xscale("log")
        if max(ys) / max(min(ys), 1e-12) > 30:
            ax.set_yscale("log")
    invalid = len(rows) - len(points)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel("MACs (G)")
    ax.set_title((title + "\n" if title else "") + f"{len(points)} variants"
                 + (f" ({invalid} invalid or failed, not shown)" if invalid else ""),
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def report(sweep_dir: Path, sort: str | None = None, title: str = "") -> tuple[list[dict], dict]:
    """Rebuild the table, CSV, JSON and plot of a sweep directory; print the table."""
    rows = collect(sweep_dir)
    ordered = sort_rows(rows, sort)
    csv_path, json_path = write_results(ordered, sweep_dir)
    png = plot(ordered, Path(sweep_dir) / "results.png", title)
    ok = sum(r.get("status") == "ok" for r in rows)
    print_table(ordered, title=f"{title or Path(sweep_dir)}: {len(rows)} variants, {ok} ok")
    console = _console()
    console.print(f"wrote {csv_path}, {json_path}" + (f", {png}" if png else
                                                     " (no plot: pip install matplotlib)"))
    return ordered, {"csv": csv_path, "json": json_path, "png": png}


# ---- the command line (`netc sweep ...`, wired in netc/cli.py)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """netc's own flags of `netc sweep`; everything else is handed to Hydra."""
    parser.add_argument("--dry-run", action="store_true",
                        help="expand the variants, check each statically and print them; "
                             "launch nothing")
    parser.add_argument("--report", metavar="DIR",
                        help="rebuild the table, results.csv/json and the plot of an existing "
                             "sweep directory (e.g. after a cluster run); launch nothing")
    parser.add_argument("--sort", metavar="COLUMN",
                        help="sort the table by a column (params, macs, latency_ms, "
                             "train_ms, ...); --sort=-COLUMN sorts descending")
    parser.add_argument("-cd", "--config-dir", metavar="DIR",
                        help="a folder of Hydra configs (e.g. configs/), as in any Hydra app")
    parser.add_argument("-cn", "--config-name", metavar="NAME",
                        help="the sweep config in --config-dir (its `defaults` start with "
                             "netc_sweep; it may set `spec` and `hydra.sweeper.params`)")
    parser.add_argument("--cfg", choices=("job", "hydra", "all"),
                        help="print Hydra's composed config and exit (as Hydra's --cfg)")
    parser.add_argument("-m", "--multirun", action="store_true",
                        help="accepted for Hydra habits; netc sweep always runs a multirun")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        from netc.cli import UsageError

        raise UsageError(message)


def _parse(tokens: list[str], flags: argparse.Namespace) -> argparse.Namespace:
    """Flags may come anywhere among the overrides (argparse.REMAINDER keeps them)."""
    from netc.cli import UsageError

    parser = _Parser(prog="netc sweep", add_help=False)
    add_arguments(parser)
    parser.add_argument("words", nargs="*")
    opts = parser.parse_intermixed_args(tokens)
    for name in ("dry_run", "multirun"):
        setattr(opts, name, getattr(opts, name) or getattr(flags, name, False))
    for name in ("report", "sort", "config_dir", "config_name", "cfg"):
        if getattr(opts, name) is None:
            setattr(opts, name, getattr(flags, name, None))
    opts.spec = None
    opts.overrides = []
    for word in opts.words:
        if opts.spec is None and not opts.overrides and "=" not in word \
                and not word.startswith(("~", "+")):
            opts.spec = word
        elif "=" not in word and not word.startswith("~"):
            raise UsageError(f"`{word}` is not an override (key=value); the spec comes first: "
                             "netc sweep SPEC key=a,b ...")
        else:
            opts.overrides.append(word)
    return opts


def _checked_overrides(overrides: list[str]) -> list[str]:
    """The overrides escaped (see `escape_override`) and parsed once with Hydra's parser
    before Hydra runs: a malformed one, or one deleting a netc option (`~spec`), is a usage
    error here rather than a traceback later."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from netc.cli import UsageError

    escaped = [escape_override(o) for o in overrides]
    parser = OverridesParser.create()
    for original, text in zip(overrides, escaped):
        try:
            parsed = parser.parse_overrides([text])[0]
        except Exception as error:
            raise UsageError(f"cannot read the override `{original}`: "
                             f"{' '.join(str(error).split())}") from None
        key = parsed.get_key_element().lstrip("+~")
        if parsed.is_delete() and key in OPTIONS:
            raise UsageError(f"`{original}`: `{key}` is a netc sweep option and cannot be "
                             f"deleted; set it instead (e.g. {key}=...)")
    return escaped


def _spec_values(overrides: list[str]) -> tuple[list[str], str | None]:
    """The spec paths named by a `spec=` override (a sweep gives several) and `net=`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from netc.cli import UsageError

    specs, net = [], None
    wanted = [o for o in overrides if o.split("=", 1)[0].lstrip("+") in ("spec", "net")]
    if not wanted:
        return specs, net
    try:
        parsed = OverridesParser.create().parse_overrides(wanted)
    except Exception as error:
        raise UsageError(" ".join(str(error).split())) from None
    for override in parsed:
        key = override.get_key_element().lstrip("+")
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        if key == "spec":
            specs += [str(_unquote(v)) for v in values]
        elif len(values) == 1 and values[0] not in ("null", ""):
            net = _unquote(values[0])
    return specs, net


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _config_file(config_dir: str | None, config_name: str) -> Path | None:
    if config_dir is None:
        return None
    name = config_name if config_name.endswith((".yaml", ".yml")) else config_name + ".yaml"
    path = Path(config_dir) / name
    return path if path.is_file() else None


def _specs_from_config(path: Path) -> tuple[list[str], bool]:
    """`spec` (or a sweep over it in `hydra.sweeper.params`) from a sweep config file, and
    whether the file builds on netc_sweep."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    defaults = data.get("defaults") or []
    extends = any(d == CONFIG_NAME or isinstance(d, dict) and CONFIG_NAME in d.values()
                  for d in defaults)
    swept = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    if "spec" in swept:
        override = OverridesParser.create().parse_overrides([f"spec={swept['spec']}"])[0]
        if override.is_sweep_override():
            return [_unquote(v) for v in override.sweep_string_iterator()], extends
        return [_unquote(override.get_value_element_as_str())], extends
    if isinstance(data.get("spec"), str) and data["spec"] != MISSING:
        return [data["spec"]], extends
    return [], extends


def run_cli(flags: argparse.Namespace) -> int:
    """`netc sweep`: exit 0 when every variant is valid (and ran), 1 when some are not,
    2 on usage errors (bad overrides, unreadable files, Hydra configuration errors)."""
    from netc.cli import EXIT_OK, EXIT_SPEC, EXIT_USAGE, UsageError

    opts = _parse(list(getattr(flags, "args", []) or []), flags)
    if opts.report:
        if not Path(opts.report).is_dir():
            raise UsageError(f"--report: `{opts.report}` is not a directory")
        rows, _ = report(Path(opts.report), opts.sort)
        if not rows:
            raise UsageError(f"--report: no netc sweep jobs in `{opts.report}`")
        return EXIT_OK if all(r.get("status") == "ok" for r in rows) else EXIT_SPEC

    if opts.sort:
        sort_rows([], opts.sort)  # an unknown column is a usage error before anything runs
    config_name = opts.config_name or CONFIG_NAME
    config_file = None
    if opts.config_name:
        if not opts.config_dir:
            raise UsageError("--config-name needs --config-dir (the folder of your configs)")
        config_file = _config_file(opts.config_dir, opts.config_name)
        if config_file is None:
            raise UsageError(f"no config `{opts.config_name}` in `{opts.config_dir}`")
    if opts.config_dir and not Path(opts.config_dir).is_dir():
        raise UsageError(f"--config-dir: `{opts.config_dir}` is not a directory")

    opts.overrides = _checked_overrides(opts.overrides)
    swept, net = _spec_values(opts.overrides)
    spec_default = None
    if opts.spec is not None:
        if not Path(opts.spec).is_file():
            raise UsageError(f"cannot read `{opts.spec}`: no such file")
        spec_default = str(Path(opts.spec).resolve())
    specs = swept or ([spec_default] if spec_default else [])
    if config_file is not None:
        from_file, extends = _specs_from_config(config_file)
        if not extends:
            raise UsageError(f"{config_file}: a sweep config builds on netc's: start it with "
                             f"`defaults: [{CONFIG_NAME}, _self_]`")
        if not specs:
            specs = from_file
    if not specs:
        raise UsageError("no spec: netc sweep SPEC [overrides], spec=a.net,b.net, or "
                         "`spec:` in the --config-name file")
    infos = []
    for spec in specs:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"cannot read `{spec}`: no such file")
        info = spec_parameters(path, net)
        if info.problems:
            print(info.problems, file=sys.stderr)
            return EXIT_SPEC
        infos.append(info)
    register_config(primary_config(infos, spec_default))

    # Hydra's flags first, then the overrides (ANCHORS 8.3: flag order); always a multirun,
    # since Hydra uses the configured launcher only then (--cfg only prints the config)
    argv = ["netc-sweep"] + (["--cfg", opts.cfg] if opts.cfg else ["--multirun"])
    if opts.config_dir:
        argv += ["--config-dir", str(Path(opts.config_dir).resolve())]
    if opts.config_name:
        argv += ["--config-name", config_name]
    argv += opts.overrides
    if opts.dry_run:
        argv.append("hydra.sweeper.dry_run=true")
    STATE.outcome = None
    status = run_hydra(argv)
    if opts.cfg:
        return EXIT_OK if status == 0 else EXIT_USAGE
    outcome = STATE.outcome
    if outcome is None:
        if status == 0:
            print("netc sweep: no netc sweeper ran (hydra/sweeper overridden?); build the "
                  "table with `netc sweep --report DIR`", file=sys.stderr)
            return EXIT_OK
        return EXIT_USAGE  # Hydra has reported why (composition or override errors)
    all_ok = all(v.status == "ok" for v in outcome.variants)
    if outcome.dry_run:
        return EXIT_OK if all_ok else EXIT_SPEC
    title = ", ".join(sorted({Path(i.path).name for i in infos}))
    rows, _ = report(outcome.sweep_dir, opts.sort, title=title)
    _console().print(f"sweep of {len(rows)} variants took {outcome.seconds:.1f} s "
                     f"(hydra/launcher={outcome.launcher}); rebuild this table with "
                     f"`netc sweep --report {outcome.sweep_dir}`")
    if status != 0:
        return EXIT_SPEC
    return EXIT_OK if all(r.get("status") == "ok" for r in rows) else EXIT_SPEC


def run_hydra(argv: list[str]) -> int:
    """Run the `@hydra.main` app with `argv` (ANCHORS 8.2: the argv hand-off); Hydra
    reports its own errors and exits, so SystemExit becomes a status here."""
    import hydra

    app = hydra.main(version_base="1.3", config_path=None, config_name=CONFIG_NAME)(job)
    old = sys.argv
    sys.argv = argv
    try:
        app()
        return 0
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = old
