"""Results: one row per variant rebuilt from a sweep directory (so `--report DIR` works after
a cluster run), one column per swept key, the Pareto front of the objectives, the table on
the terminal, `results.csv`, `results.json` and the plot `results.png`.
"""
from __future__ import annotations

import csv
import difflib
import json
import math
import os
import sys
from pathlib import Path

from netc.sweep.config import RESULT_FILE, VARIANTS_FILE, UsageError

# The result columns of results.csv / results.json, in order; the swept keys' columns come
# after `job` (see `columns`).
COLUMNS = ("variant", "job", "spec", "status", "params", "buffers", "macs", "input", "output",
           "min_input", "rf", "rf_jump", "val_acc", "val_loss", "train_loss", "epochs",
           "train_s", "latency_ms", "latency_iqr_ms", "latency_spread", "reference_spread",
           "load", "train_ms", "train_peak_mb", "batch_size", "train_batch_size", "threads",
           "artifact", "job_s", "objective", "pareto", "warning", "error")
# objectives a search maximises by default (the rest are minimised: loss, time, size)
MAXIMISE = {"val_acc"}

CONSOLE = None  # a rich Console the caller may set (tests, embedding)


def write_json(path: Path, data) -> None:
    """Write JSON atomically (jobs in other processes read these files while they change)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temp, path)


# ---- rows from a sweep directory

def collect(sweep_dir: Path) -> list[dict]:
    """One row per variant, from `variants.json` (the expansion and the static check) and
    each job directory's `result.json`; a job directory without one is `missing` (it
    crashed, was killed, or still runs). Works on plain Hydra multirun directories of
    netc jobs too (without `variants.json`). Each swept key becomes a column."""
    sweep_dir = Path(sweep_dir)
    variants = []
    if (sweep_dir / VARIANTS_FILE).is_file():
        variants = json.loads((sweep_dir / VARIANTS_FILE).read_text())
    jobs: dict[object, dict] = {}
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
        # keyed by job number (a search may try the same overrides twice), else overrides
        jobs[row["job"] if row.get("job") is not None else tuple(row["overrides"])] = row
    rows = []
    for variant in variants:
        key = variant.get("job")
        if key is None or key not in jobs:
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
    keys = swept_keys(rows)
    out = []
    for row in rows:
        values = override_values(row.get("overrides") or [])
        full = {**{c: row.get(c) for c in COLUMNS}, **row}
        for key, column in keys.items():
            full[column] = values.get(key)
        out.append(full)
    mark_pareto(out, read_meta(sweep_dir))
    return out


def _read_overrides(path: Path) -> list[str]:
    from omegaconf import OmegaConf

    try:
        return [str(o) for o in OmegaConf.load(path)]
    except Exception:
        return []


def read_meta(sweep_dir: Path) -> dict:
    try:
        return json.loads((Path(sweep_dir) / "sweep.json").read_text())
    except (OSError, ValueError):
        return {}


def _split_override(text: str) -> tuple[str, str]:
    key, _, value = str(text).partition("=")
    return key, value


def override_values(overrides: list[str]) -> dict:
    """key -> value of a variant's overrides, values read as Hydra reads them (numbers,
    lists, strings); Hydra's own settings (`hydra.*`, `hydra/...`) left out."""
    values = {}
    for text in overrides:
        key, value = _split_override(text)
        key = key.lstrip("+~")
        if key.startswith("hydra"):
            continue
        values[key] = _parse_value(value)
    return values


def _parse_value(text: str):
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        return OverridesParser.create().parse_overrides([f"k={text}"])[0].value()
    except Exception:  # not Hydra's syntax (cannot happen for a launched job): the text
        return text


def swept_keys(rows: list[dict]) -> dict[str, str]:
    """The keys the variants set, in order, each with its column name: the key itself, or
    `arg.KEY` where a result column has that name (`input=64` next to the input's shape)."""
    keys: dict[str, str] = {}
    for row in rows:
        for key in override_values(row.get("overrides") or []):
            if key not in keys:
                keys[key] = f"arg.{key}" if key in COLUMNS or key == "overrides" else key
    return keys


def columns(rows: list[dict]) -> list[str]:
    """The CSV / JSON columns: variant, job, one per swept key, then the results."""
    swept = list(swept_keys(rows).values())
    return ["variant", "job", *swept, *COLUMNS[2:]]


# ---- objectives and the Pareto front

def directions(meta: dict, names: list[str]) -> list[str]:
    """Each objective's direction: the sweeper's (`hydra.sweeper.direction`), else
    maximise accuracy and minimise everything else."""
    given = [str(d).lower() for d in meta.get("direction") or []]
    if len(given) == len(names):
        return ["maximize" if d.startswith("max") else "minimize" for d in given]
    return ["maximize" if n in MAXIMISE else "minimize" for n in names]


def mark_pareto(rows: list[dict], meta: dict) -> None:
    """`pareto: true` on the rows no other row beats in every objective (for one objective:
    the best row); rows without all objective values are not candidates."""
    names = meta.get("objective") or []
    if not names:
        return
    signs = [1 if d == "maximize" else -1 for d in directions(meta, names)]
    points = {}
    for index, row in enumerate(rows):
        values = [row.get(n) for n in names]
        if row.get("status") == "ok" and all(isinstance(v, (int, float)) and math.isfinite(v)
                                             for v in values):
            points[index] = [s * v for s, v in zip(signs, values)]
    for index, row in enumerate(rows):
        if index not in points:
            row["pareto"] = None
            continue
        mine = points[index]
        row["pareto"] = not any(
            all(o >= m for o, m in zip(other, mine)) and any(o > m for o, m in zip(other, mine))
            for j, other in points.items() if j != index)


# ---- sorting, files

def sort_rows(rows: list[dict], key: str | None) -> list[dict]:
    """Rows sorted by a column (`-column`: descending); empty values last either way."""
    if not key:
        return rows
    descending = key.startswith("-")
    column = key.lstrip("-")
    known = columns(rows) if rows else list(COLUMNS)
    if column not in known:
        close = difflib.get_close_matches(column, known, n=1)
        raise UsageError(f"--sort: no column `{column}`"
                         + (f"; did you mean `{close[0]}`?" if close else "")
                         + f" (columns: {', '.join(known)})")

    def value(row):
        v = row.get(column)
        if isinstance(v, list):
            v = " ".join(map(str, v))
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
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def write_results(rows: list[dict], sweep_dir: Path) -> tuple[Path, Path]:
    sweep_dir = Path(sweep_dir)
    names = columns(rows)
    csv_path, json_path = sweep_dir / "results.csv", sweep_dir / "results.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(row, c) for c in names])
    write_json(json_path, {"columns": names, "rows": rows})
    return csv_path, json_path


# ---- the terminal

def _human(value) -> str:
    from netc.analysis import human

    return human(value) if isinstance(value, (int, float)) else ""


def _one_line(row: dict) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('error')}"
    text = f"ok: {_human(row.get('params'))} params, {_human(row.get('macs'))} MACs"
    if row.get("val_acc") is not None:
        text += f", val acc {row['val_acc']:.2%} after {row.get('epochs')} epochs"
    if row.get("latency_ms") is not None:
        text += f", forward {row['latency_ms']:.2f} ms (IQR {row.get('latency_iqr_ms')})"
    if row.get("train_ms") is not None:
        text += f", train step {row['train_ms']:.1f} ms"
    if row.get("warning"):
        text += f"; warning: {row['warning']}"
    return text


def _console():
    if CONSOLE is not None:
        return CONSOLE
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(highlight=False, width=None if tty else 200, soft_wrap=not tty)


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


def print_variants(variants, seconds: float, launcher: str | None, dry_run: bool,
                   sweep_dir: Path) -> None:
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


def _format(key: str, value) -> str:
    if value is None:
        return ""
    if key in ("params", "macs"):
        return _human(value)
    if key == "val_acc":
        return f"{value:.2%}"
    if key == "latency_ms":
        return f"{value:.2f}"
    if key == "pareto":
        return "*" if value else ""
    if key == "artifact":
        return Path(value).name
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def print_table(rows: list[dict], title: str = "") -> None:
    """The sweep's table: one column per swept key (those all variants share are said once,
    in the title), then the results that any row has."""
    from rich.table import Table

    console = _console()
    keys = swept_keys(rows)
    common = [k for k, c in keys.items() if len(rows) > 1
              and len({json.dumps(r.get(c)) for r in rows}) == 1]
    if common:
        shared = " ".join(f"{k}={_format('', rows[0].get(keys[k]))}" for k in common)
        title = (title + "; " if title else "") + "all with " + shared
    shown = [("#", "variant", "right"), ("job", "job", "right")]
    swept = {column for key, column in keys.items()}
    shown += [(key, column, "left") for key, column in keys.items() if key not in common]
    shown += [("status", "status", "left")]
    for name, key, justify in (
            ("params", "params", "right"), ("MACs", "macs", "right"),
            ("input", "input", "left"), ("output", "output", "left"),
            ("min input", "min_input", "left"), ("RF", "rf", "right"),
            ("val acc", "val_acc", "right"), ("val loss", "val_loss", "right"),
            ("epochs", "epochs", "right"), ("train s", "train_s", "right"),
            ("forward ms", "latency_ms", "right"), ("IQR ms", "latency_iqr_ms", "right"),
            ("train ms", "train_ms", "right"), ("train MB", "train_peak_mb", "right"),
            ("threads", "threads", "right"), ("artifact", "artifact", "left"),
            ("pareto", "pareto", "left"), ("error", "error", "left")):
        if any(r.get(key) is not None for r in rows) or key in ("params", "macs"):
            shown.append((name, key, justify))
    table = Table(title=title or None, title_justify="left")
    for name, _, justify in shown:
        table.add_column(name, justify=justify, overflow="fold")
    for row in rows:
        cells = []
        for _, key, _ in shown:
            value = row.get(key)
            if key == "status":
                cells.append("[green]ok[/]" if value == "ok" else f"[red]{value}[/]")
            else:  # a swept key's value as it was given; a result by its column
                cells.append(_format("" if key in swept else key, value))
        table.add_row(*cells)
    console.print(table)
    warned = [r for r in rows if r.get("warning")]
    if warned:
        console.print(f"[yellow]warning[/]: {len(warned)} of {len(rows)} latencies may not be "
                      "trustworthy (rerun on a quiet machine, or with bench.threads=1 and fewer "
                      "parallel jobs):")
        for row in warned:
            console.print(f"  #{row.get('variant')}: {row['warning']}")


# ---- the plot

def plot(rows: list[dict], path: Path, title: str = "", meta: dict | None = None) -> Path | None:
    """With two objectives or more: the first against the second, the Pareto front drawn
    and its points starred. Otherwise MACs against params, one point per valid variant
    (numbered), coloured by validation accuracy or forward latency when measured. None
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    meta = meta or {}
    names = meta.get("objective") or []
    fig, ax = plt.subplots(figsize=(7, 5 + 0.12 * min(len(rows), 16)), dpi=120)
    if len(names) >= 2:
        xname, yname = names[1], names[0]
        points = [r for r in rows if r.get("status") == "ok"
                  and isinstance(r.get(xname), (int, float))
                  and isinstance(r.get(yname), (int, float))]
    else:
        xname, yname = "params", "macs"
        points = [r for r in rows if r.get("status") == "ok" and r.get("params")
                  and r.get("macs")]
    scale, label = {}, {"val_acc": "validation accuracy", "val_loss": "validation loss",
                        "latency_ms": "forward latency (ms, CPU, median)"}
    for key, name in (("params", "parameters"), ("macs", "MACs")):  # K, M or G by size
        top = max([r[key] for r in points if isinstance(r.get(key), (int, float))] or [1])
        unit, factor = next(((u, f) for u, f in (("G", 1e9), ("M", 1e6), ("K", 1e3))
                             if top >= f), ("", 1))
        scale[key], label[key] = 1 / factor, f"{name} ({unit})" if unit else name
    if points:
        xs = [r[xname] * scale.get(xname, 1) for r in points]
        ys = [r[yname] * scale.get(yname, 1) for r in points]
        colour_by = next((k for k in ("val_acc", "latency_ms") if k not in (xname, yname)
                          and all(r.get(k) is not None for r in points)), None)
        if colour_by:
            sc = ax.scatter(xs, ys, c=[r[colour_by] for r in points], cmap="viridis", s=60,
                            edgecolors="black")
            fig.colorbar(sc, ax=ax, label=label.get(colour_by, colour_by))
        else:
            ax.scatter(xs, ys, s=60, color="tab:blue", edgecolors="black")
        front = [(x, y) for r, x, y in zip(points, xs, ys) if r.get("pareto")]
        if front:
            front.sort()
            ax.scatter(*zip(*front), s=220, marker="*", color="tab:red", zorder=3,
                       label="Pareto front" if len(names) >= 2 else "best")
            if len(front) > 1:
                ax.step(*zip(*front), where="post", color="tab:red", alpha=0.6)
            ax.legend(loc="best", fontsize=8)
        for r, x, y in zip(points, xs, ys):
            ax.annotate(str(r.get("variant")), (x, y), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        keys, _ = labels([r.get("overrides") or [] for r in points])
        if len(points) <= 16:
            text = "\n".join(f"{r.get('variant')}: {k}" for r, k in zip(points, keys))
            fig.text(0.01, 0.01, text, fontsize=7, va="bottom", family="monospace")
            fig.subplots_adjust(bottom=0.12 + 0.022 * len(points))
        if min(xs) > 0 and max(xs) / min(xs) > 30:
            ax.set_xscale("log")
        if min(ys) > 0 and max(ys) / min(ys) > 30:
            ax.set_yscale("log")
    invalid = len(rows) - len(points)
    ax.set_xlabel(label.get(xname, xname))
    ax.set_ylabel(label.get(yname, yname))
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
    png = plot(ordered, Path(sweep_dir) / "results.png", title, read_meta(sweep_dir))
    ok = sum(r.get("status") == "ok" for r in rows)
    print_table(ordered, title=f"{title or Path(sweep_dir)}: {len(rows)} variants, {ok} ok")
    console = _console()
    console.print(f"wrote {csv_path}, {json_path}" + (f", {png}" if png else
                                                     " (no plot: pip install matplotlib)"))
    return ordered, {"csv": csv_path, "json": json_path, "png": png}
