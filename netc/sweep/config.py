"""The sweep's configuration: netc's options and their schema, and a spec's parameters as
Hydra's primary config (`netc_sweep`, registered in Hydra's ConfigStore before Hydra starts).

Nothing here imports torch or Hydra at import time.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.api import from_config


class UsageError(Exception):
    """A mistake in the command line or a sweep config: `netc sweep` exits 2 with it. (The
    sweep package has its own, so that it never imports netc.cli: the CLI imports it.)"""


CONFIG_NAME = "netc_sweep"
RESULT_FILE = "result.json"
VARIANTS_FILE = "variants.json"
OPTIONS = ("spec", "net", "input", "artifact", "measure", "bench", "train", "objective")
# measure=: latency (CPU forward and one training step on random data), train (fit on a
# real data set and report validation accuracy), all (both)
MEASURES = ("none", "latency", "train", "all")
ARTIFACTS = {"torchscript": ".pt", "export": ".pt2", "py": ".py"}
BENCH_DEFAULTS = {
    "batch_size": 1,  # forward latency batch
    "warmup": 3,  # untimed forwards first
    "runs": 20,  # timed forwards, interleaved with a reference kernel; median and IQR
    "max_spread": 0.1,  # warn when the IQR exceeds this fraction of the median
    "train": True,  # also time one training step (forward + backward)
    "train_batch_size": 2,  # BatchNorm needs more than one sample per channel to train
    "train_runs": 2,  # timed training steps after one untimed one; the median is reported
    "threads": None,  # torch.set_num_threads in the job (null: torch's default)
    # bytes a job may allocate: the model, and a measurement's batch (inputs, activations,
    # gradients), estimated from the graph before anything is allocated (null: 4 GiB)
    "memory": None,
}
# measure=train: fit each variant on a data set that ships with a package (no download)
DATASETS = ("digits",)  # scikit-learn's 1,797 8x8 handwritten digits (load_digits)
OPTIMIZERS = ("adam", "sgd")
TRAIN_DEFAULTS = {
    "data": "digits",
    "epochs": 5,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 0.003,
    "momentum": 0.9,  # sgd only
    "weight_decay": 0.0,
    "val_fraction": 0.2,  # held out, stratified, the same split for every variant
    "seed": 0,  # the split, the initial weights and the batch order
    "threads": 1,  # torch threads while training (1: deterministic and fair between jobs)
}
# objective=: what a job returns to a search sweeper (hydra/sweeper=optuna), by column;
# a list for a multi-objective search (one per hydra.sweeper.direction)
OBJECTIVES = {"val_acc": ("train", "all"), "val_loss": ("train", "all"),
              "train_loss": ("train", "all"), "latency_ms": ("latency", "all"),
              "train_ms": ("latency", "all"), "params": None, "macs": None}

# The columns of results.csv / results.json, in order.



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
        raise UsageError(f"the spec's parameter `{clash[0]}` has the name of a netc sweep "
                         f"option ({', '.join(OPTIONS)}); rename it to sweep it")
    node = {
        "defaults": [{"override hydra/sweeper": "netc"}, "_self_"],
        "spec": escape(spec_default) if spec_default is not None else MISSING,
        "net": None,
        **escape(params),  # spec strings are data (see `escape`)
        "input": None,  # the first input's size: 64, [64, 48], [3, 64, 64] or "3,64,64"
        "artifact": False,  # true (TorchScript), or torchscript / export / py
        "measure": "none",  # latency, train or all (see MEASURES)
        "bench": dict(BENCH_DEFAULTS),
        "train": dict(TRAIN_DEFAULTS),
        "objective": None,  # a column (val_acc, latency_ms, macs, ...) or a list of them
        # the job's name, hence its log file (sweep.log), whichever module runs the job
        "hydra": {"job": {"name": "sweep"}},
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



# ---- netc's options of a variant, checked against their schema

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_group(name: str, given, defaults: dict, checks: dict, problems: list[str]) -> dict:
    """`bench` or `train`: known keys only (with a did-you-mean), each value checked."""
    given = from_config(given) or {}
    if not isinstance(given, dict):
        problems.append(f"{name}: expected a group of settings ({', '.join(defaults)})")
        return dict(defaults)
    values = {**defaults, **given}
    for key, value in values.items():
        if key not in defaults:
            close = difflib.get_close_matches(key, defaults, n=1)
            problems.append(f"{name}.{key}: unknown"
                            + (f"; did you mean `{name}.{close[0]}`?" if close else "")
                            + f" (known: {', '.join(defaults)})")
            continue
        problem = checks[key](value)
        if problem:
            problems.append(f"{name}.{key}: {problem}, got {value!r}")
    return values


def _positive(value):
    return None if _is_int(value) and value > 0 else "expected a positive integer"


def _count(value):
    return None if _is_int(value) and value >= 0 else "expected a whole number (0 or more)"


def _optional_positive(value):
    return None if value is None else _positive(value)


def _boolean(value):
    return None if isinstance(value, bool) else "expected true or false"


def _fraction(value):
    return None if _is_number(value) and 0 < value < 1 else "expected a number between 0 and 1"


def _non_negative(value):
    return None if _is_number(value) and value >= 0 else "expected a number (0 or more)"


def _rate(value):
    return None if _is_number(value) and value > 0 else "expected a positive number"


def _one_of(choices):
    return lambda value: None if value in choices else f"expected one of {', '.join(choices)}"


BENCH_CHECKS = {"batch_size": _positive, "warmup": _count, "runs": _positive,
                "max_spread": _rate, "train": _boolean, "train_batch_size": _positive,
                "train_runs": _positive, "threads": _optional_positive,
                "memory": _optional_positive}
TRAIN_CHECKS = {"data": _one_of(DATASETS), "epochs": _positive, "batch_size": _positive,
                "optimizer": _one_of(OPTIMIZERS), "lr": _rate, "momentum": _non_negative,
                "weight_decay": _non_negative, "val_fraction": _fraction, "seed": _count,
                "threads": _optional_positive}


def objectives(value) -> list[str]:
    """The `objective` option as a list of column names ([] when unset)."""
    value = from_config(value)
    if value in (None, "", "none"):
        return []
    return [value] if isinstance(value, str) else list(value)


def check_options(cfg, problems: list[str]) -> dict:
    """netc's options of one variant (`artifact`, `measure`, `bench.*`, `train.*`,
    `objective`), validated; each mistake is a line in `problems`."""
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
        close = difflib.get_close_matches(str(measure), MEASURES, n=1)
        problems.append(f"measure: expected one of {', '.join(MEASURES)}, got {measure!r}"
                        + (f"; did you mean `{close[0]}`?" if close else ""))
    bench = _check_group("bench", cfg.get("bench"), BENCH_DEFAULTS, BENCH_CHECKS, problems)
    train = _check_group("train", cfg.get("train"), TRAIN_DEFAULTS, TRAIN_CHECKS, problems)
    wanted = objectives(cfg.get("objective"))
    for name in wanted:
        if not isinstance(name, str) or name not in OBJECTIVES:
            close = difflib.get_close_matches(str(name), OBJECTIVES, n=1)
            problems.append(f"objective: no column `{name}`"
                            + (f"; did you mean `{close[0]}`?" if close else "")
                            + f" (objectives: {', '.join(OBJECTIVES)})")
        elif OBJECTIVES[name] and measure not in OBJECTIVES[name]:
            problems.append(f"objective: `{name}` needs measure={OBJECTIVES[name][0]} (or all)")
    return {"artifact": artifact, "measure": measure, "bench": bench, "train": train,
            "objective": wanted}


def option_problems(key: str, value) -> list[str]:
    """The mistakes in one command-line option value (`measure=latensy`, `bench.runs=0`,
    `train.epoch=3`), checked before Hydra starts so that they are usage errors."""
    problems: list[str] = []
    head, _, rest = key.partition(".")
    if head in ("bench", "train"):
        cfg = {head: {rest: value}} if rest else {head: value}
    else:
        cfg = {head: value}
    if head == "objective":
        cfg["measure"] = "all"  # the measure is checked with the variant
    check_options(cfg, problems)
    return problems
