"""Launching: the job each variant runs (in whatever process the launcher gives it), the
netc sweeper's expand-check-launch, the checking wrapper that gives any other sweeper
(`hydra/sweeper=optuna`) the same pre-check, progress while jobs run, and the hand-off to
Hydra's `@hydra.main`.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netc.sweep.config import ARTIFACTS, CONFIG_NAME, RESULT_FILE, VARIANTS_FILE, UsageError
from netc.sweep.precheck import Check, _memory_limits, check_overrides, check_variant
from netc.sweep.results import _one_line, print_variants, write_json

log = logging.getLogger("netc.sweep")


# ---- the job: one variant, in whatever process the launcher gives it

def job(cfg):
    """Hydra's task function: check, record, optionally build, train and measure one
    variant. It never raises: a failing variant is a row with its error. It returns the
    row, or, when `objective` names columns, their values for a search sweeper (NaN when
    the variant failed: Optuna records a failed trial and goes on)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    row: dict[str, Any] = {"job": hc.job.num, "overrides": list(hc.overrides.task),
                           "job_dir": str(out_dir)}
    start = time.perf_counter()
    wanted: list[str] = []
    try:
        row.update(evaluate_variant(cfg, out_dir))
        wanted = row.pop("_objective", [])
    except Exception as error:  # a bug or an environment problem: a row, not a crash
        log.exception("variant failed")
        row.update(status="failed", error=f"{type(error).__name__}: {error}")
    row["job_s"] = round(time.perf_counter() - start, 3)
    if wanted:
        row["objective"] = objective_values(row, wanted)
    write_json(out_dir / RESULT_FILE, row)
    log.info("%s", _one_line(row))
    if not wanted:
        return row
    values = row["objective"]
    if not all(math.isfinite(v) for v in values):
        # a search sweeper must not get NaN (Optuna 2 refuses it); a raised error is a
        # failed trial, with this message in the sweeper's log
        raise VariantFailed(row.get("error") or f"objective {wanted}: {values}")
    return values[0] if len(values) == 1 else values


class VariantFailed(Exception):
    """A variant with no objective value: statically invalid (never launched), failed, or
    diverged. A search sweeper records it as a failed trial."""


def objective_values(row: dict, wanted: list[str]) -> list[float]:
    """The objective columns of a row as floats (NaN for a failed variant)."""
    values = []
    for name in wanted:
        value = row.get(name) if row.get("status") == "ok" else None
        values.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return values


def evaluate_variant(cfg, out_dir: Path) -> dict:
    check = check_variant(cfg)
    row: dict[str, Any] = {"spec": str(check.spec) if check.spec else None,
                           "status": check.status, "error": check.error,
                           "diagnostics": check.diagnostics, **check.stats}
    if check.status != "ok":
        return row
    opts = check.options
    row["_objective"] = opts["objective"]
    if opts["artifact"] is None and opts["measure"] == "none":
        return row
    import torch

    from netc.api import lower
    from netc.load import write_artifact
    from netc.sweep.measure import measure

    graph = check.compiled.graph
    torch.manual_seed(opts["train"]["seed"])  # the initial weights: the same every run
    module, code = lower(check.compiled, _memory_limits(opts))  # sizes checked first
    if opts["measure"] in ("train", "all"):
        from netc.sweep.train import fit, load_data

        train = opts["train"]
        data = load_data(train["data"], train["val_fraction"], train["seed"])
        row.update(fit(module, data, tuple(graph.inputs[0].shape), **train, log=log.info))
    if opts["artifact"]:  # after training: the artifact holds the trained weights
        path = out_dir / (check.spec.stem + ARTIFACTS[opts["artifact"]])
        write_artifact(module, code, graph, opts["artifact"], path)
        row["artifact"] = str(path)
    if opts["measure"] in ("latency", "all"):
        row.update(measure(module, graph, opts["bench"]))
    return row


# ---- what a sweep did, for the command line (Hydra drops the sweeper's return value)

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

    def take(self, check: Check) -> None:
        self.status, self.error = check.status, check.error
        self.diagnostics, self.stats = check.diagnostics, check.stats
        self.spec = str(check.spec) if check.spec else None


@dataclass
class Outcome:
    """What the last sweep in this process did."""

    sweep_dir: Path
    variants: list[Variant]
    dry_run: bool
    launcher: str | None = None
    sweeper: str | None = None
    seconds: float = 0.0
    check_seconds: float = 0.0


class _State:
    outcome: Outcome | None = None
    dry_run: bool = False  # set by the command line (`--dry-run`), for every sweeper
    usage_error: str | None = None  # a mistake found inside Hydra: exit 2
    progress: "Progress | None" = None


STATE = _State()


class SweepAborted(Exception):
    """Raised inside Hydra to stop a sweep whose options are wrong (the CLI exits 2)."""


def _sweep_meta(config, sweeper: str | None, launcher: str | None) -> dict:
    """What the results need to know about the sweep: its search directions and the
    objective columns (for the Pareto front)."""
    from netc.api import from_config
    from netc.sweep.config import objectives

    direction = config.hydra.sweeper.get("direction") if "sweeper" in config.hydra else None
    direction = from_config(direction)
    if direction is None:
        directions = []
    elif isinstance(direction, (list, tuple)):
        directions = list(direction)
    else:
        directions = [direction]
    # Optuna's default is an enum (Direction.minimize): its name
    return {"sweeper": sweeper, "launcher": launcher,
            "objective": objectives(config.get("objective")),
            "direction": [getattr(d, "name", str(d)) for d in directions]}


# ---- hydra/sweeper=netc: expand, check, launch the valid variants

def run_sweeper(sweeper, arguments: list[str]):
    """Expand, check every variant statically, record the invalid ones, launch the valid
    ones with the configured launcher, and leave the outcome in `STATE`."""
    from omegaconf import OmegaConf

    from netc.sweep.precheck import expand

    config, loader = sweeper.config, sweeper.hydra_context.config_loader
    sweep_dir = Path(str(config.hydra.sweep.dir))
    launcher = config.hydra.runtime.choices.get("hydra/launcher")
    dry_run = sweeper.dry_run or STATE.dry_run
    tic = time.perf_counter()
    variants = []
    for index, overrides in enumerate(expand(sweeper, arguments)):
        variant = Variant(index, overrides)
        check = check_overrides(config, loader, overrides)
        if check.usage:  # a mistake in the options: no variant can be right; exit 2
            STATE.usage_error = check.error
            return []
        variant.take(check)
        variants.append(variant)
    outcome = Outcome(sweep_dir, variants, dry_run, launcher, "netc")
    outcome.check_seconds = time.perf_counter() - tic
    STATE.outcome = outcome
    valid = [v for v in variants if v.status == "ok"]
    print_variants(variants, outcome.check_seconds, launcher, dry_run, sweep_dir)
    if dry_run:
        return []

    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")
    write_json(sweep_dir / "sweep.json", _sweep_meta(config, "netc", launcher))
    for number, variant in enumerate((v for v in variants if v.status != "ok"), len(valid)):
        record_invalid(loader, config, variant, number, sweep_dir)
    _write_variants(sweep_dir, variants)
    progress = Progress(sweep_dir, len(valid))
    progress.sequential = launcher == "basic"
    progress.start()
    returns = []
    try:
        start = 0
        chunks = sweeper.split_overrides_to_chunks([v.overrides for v in valid],
                                                   sweeper.max_batch_size) if valid else []
        for chunk in chunks:  # (Hydra's splitter asserts on an empty list: all invalid)
            progress.launched += len(chunk)
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


# ---- any other sweeper (optuna, ...): the same check, in front of its launcher

class CheckedLauncher:
    """Wraps the launcher a search sweeper asked Hydra for: each batch of trials is
    checked statically first; the valid ones go to the real launcher, the invalid ones are
    recorded as rows (with their diagnostic) and answered as failed jobs (VariantFailed
    with the diagnostic), which Optuna records as failed trials, without launching
    anything. With `--dry-run`, nothing is launched: valid trials are answered with 0."""

    def __init__(self, inner, config, hydra_context, dry_run: bool):
        self.inner, self.config, self.context = inner, config, hydra_context
        self.dry_run = dry_run
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        choices = config.hydra.runtime.choices
        self.meta = _sweep_meta(config, choices.get("hydra/sweeper"),
                                choices.get("hydra/launcher"))
        self.outcome = Outcome(self.sweep_dir, [], dry_run, self.meta["launcher"],
                               self.meta["sweeper"])
        STATE.outcome = self.outcome
        problem = _search_problem(self.meta, config)
        if problem:  # before any trial: the search cannot use what the jobs would return
            STATE.usage_error = problem
            raise SweepAborted(problem)
        total = config.hydra.sweeper.get("n_trials")
        self.progress = None if dry_run else Progress(self.sweep_dir, total)
        if self.progress is not None:
            self.progress.sequential = self.meta["launcher"] == "basic"
        STATE.progress = self.progress
        self.started = time.perf_counter()
        self.launched_once = False

    def launch(self, job_overrides, initial_job_idx: int):
        from hydra.core.utils import JobReturn, JobStatus

        loader = self.context.config_loader
        width = max(len(self.meta["objective"]), 1)
        batch = []
        tic = time.perf_counter()
        for overrides in job_overrides:
            variant = Variant(len(self.outcome.variants), list(overrides))
            check = check_overrides(self.config, loader, list(overrides))
            if check.usage:
                STATE.usage_error = check.error
                raise SweepAborted(check.error)
            variant.take(check)
            self.outcome.variants.append(variant)
            batch.append(variant)
            if variant.status != "ok":
                log.warning("trial %d not launched: %s", variant.index, variant.error)
        self.outcome.check_seconds += time.perf_counter() - tic
        valid = [v for v in batch if v.status == "ok"]
        invalid = [v for v in batch if v.status != "ok"]

        def answer(variant):
            if variant.status != "ok":  # not launched: a failed trial with the diagnostic
                return JobReturn(overrides=variant.overrides, status=JobStatus.FAILED,
                                 _return_value=VariantFailed(f"not launched: {variant.error}"),
                                 task_name="netc-sweep")
            value = 0.0 if width == 1 else [0.0] * width  # --dry-run: a placeholder
            return JobReturn(overrides=variant.overrides, status=JobStatus.COMPLETED,
                             _return_value=value, task_name="netc-sweep")

        if self.dry_run:
            return [answer(v) for v in batch]
        if not self.launched_once:  # the first batch: the sweep's files, the progress line
            self.launched_once = True
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.sweep_dir / "sweep.json", self.meta)
            self.progress.start()
        results = {}
        if valid:
            self.progress.launched += len(valid)
            returned = self.inner.launch([v.overrides for v in valid],
                                         initial_job_idx=initial_job_idx)
            for number, (variant, result) in enumerate(zip(valid, returned), initial_job_idx):
                _record_launched(variant, result, number)
                results[variant.index] = result
        for number, variant in enumerate(invalid, initial_job_idx + len(valid)):
            record_invalid(loader, self.config, variant, number, self.sweep_dir)
            results[variant.index] = answer(variant)
        _write_variants(self.sweep_dir, self.outcome.variants)
        self.outcome.seconds = time.perf_counter() - self.started
        return [results[v.index] for v in batch]


def _search_problem(meta: dict, config) -> str | None:
    """A search sweeper needs numbers back from each job: `objective` names them, one per
    direction of the search."""
    sweeper = meta["sweeper"]
    if not meta["objective"]:
        return (f"hydra/sweeper={sweeper} needs numbers back from each job: set objective="
                "COLUMN (val_acc with measure=train, latency_ms with measure=latency, macs, "
                "params), or objective=[val_acc,latency_ms] for a multi-objective search")
    if "direction" in config.hydra.sweeper and len(meta["direction"]) != len(meta["objective"]):
        return (f"objective names {len(meta['objective'])} column(s) "
                f"({', '.join(meta['objective'])}) but hydra.sweeper.direction has "
                f"{len(meta['direction'])} ({', '.join(meta['direction'])}): one direction "
                "per objective, e.g. hydra.sweeper.direction=[maximize,minimize]")
    return None


@contextlib.contextmanager
def checked_launchers(dry_run: bool):
    """While Hydra runs a sweeper other than netc's, every launcher it instantiates is
    wrapped in a CheckedLauncher. (Hydra has no hook between a sweeper and its launcher;
    the sweeper asks `Plugins.instantiate_launcher`, so that is where netc steps in, in
    this process only and only for the duration of the sweep.)"""
    from hydra.core.plugins import Plugins

    original = Plugins.instantiate_launcher

    def instantiate(self, hydra_context, task_function, config):
        launcher = original(self, hydra_context=hydra_context, task_function=task_function,
                            config=config)
        if config.hydra.runtime.choices.get("hydra/sweeper") == "netc":
            return launcher  # the netc sweeper checks on its own
        return CheckedLauncher(launcher, config, hydra_context, dry_run)

    Plugins.instantiate_launcher = instantiate
    try:
        yield
    finally:
        Plugins.instantiate_launcher = original
        if STATE.progress is not None:
            STATE.progress.stop()
            STATE.progress = None


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


def record_invalid(loader, config, variant: Variant, number: int, sweep_dir: Path) -> None:
    """An invalid variant's directory: its overrides, its config (when Hydra could compose
    it) and its row; nothing is launched for it."""
    from omegaconf import OmegaConf, open_dict

    variant.job = number
    job_dir = sweep_dir / str(number)
    task_cfg = None
    try:
        cfg = loader.load_sweep_config(config, list(variant.overrides))
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
    write_json(job_dir / RESULT_FILE, {**variant.row(), "launched": False})


def _write_variants(sweep_dir: Path, variants: list[Variant]) -> None:
    write_json(sweep_dir / VARIANTS_FILE, [v.row() for v in variants])


# ---- progress while jobs run

class Progress:
    """A progress line on stderr, from the `result.json` files the jobs write (so it works
    with every launcher, Ray and SLURM included): done, running, failed, elapsed and an ETA,
    redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, sweep_dir: Path, total: int | None, stream=None, interval: float = 0.5):
        self.sweep_dir, self.total = sweep_dir, total
        self.launched = 0  # jobs handed to the launcher so far
        self.sequential = False
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
        if self.total is None or self.total:
            self._start = time.perf_counter()
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

    def line(self) -> tuple[str, tuple]:
        done, failed = self._count()
        elapsed = time.perf_counter() - self._start
        running = max(self.launched - done, 0)
        if self.sequential:  # the basic launcher runs one job at a time
            running = min(running, 1)
        text = f"netc sweep: {done}" + (f"/{self.total}" if self.total else "") + " jobs done"
        text += f", {running} running" if running else ""
        text += f", {failed} failed" if failed else ""
        text += f" ({elapsed:.0f} s"
        if self.total and 0 < done < self.total:
            text += f", ETA {elapsed / done * (self.total - done):.0f} s"
        return text + ")", (done, running, failed)

    def _draw(self, final: bool = False) -> None:
        text, key = self.line()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.stream.flush()
        elif key != self._last or final and self._last is None:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = key

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._draw()
            except Exception:  # progress is a courtesy; never let it break the sweep
                pass


# ---- the hand-off to Hydra

def run_hydra(argv: list[str], dry_run: bool = False) -> int:
    """Run the `@hydra.main` app with `argv` (ANCHORS 8.2: the argv hand-off); Hydra
    reports its own errors and exits, so SystemExit becomes a status here."""
    import hydra

    app = hydra.main(version_base="1.3", config_path=None, config_name=CONFIG_NAME)(job)
    old = sys.argv
    sys.argv = argv
    try:
        with checked_launchers(dry_run):
            app()
        return 0
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = old


def usage_problem() -> None:
    """Raise the usage error found inside Hydra, if any (for the command line)."""
    if STATE.usage_error:
        raise UsageError(STATE.usage_error)
