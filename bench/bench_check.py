"""How long `netc check`, `netc summary` and `netc --help` take as whole processes, next to
`python -c "import torch"`, measured interleaved in one run.

    python bench/bench_check.py [--repeat 7]

Each round runs every command once, in turn, so that a busy machine slows them alike; the
table gives the median wall time, its interquartile range, and the median of the per-round
ratios to `import torch`. The goals (issue 11): `netc check specs/resnet152.net` <= 0.10x
`import torch`, `netc --help` <= 0.15 s.

Python's bytecode cache is allowed (PYTHONDONTWRITEBYTECODE is dropped from the children's
environment), as in an installed netc; a warm-up round writes it, and netc's parse cache
(`netc/parse_cache.py`, in a temporary XDG_CACHE_HOME). The "no parse cache" row checks
with that cache emptied before every run (Lark's table cache kept): the first check after
every file of the net was edited.
"""
from __future__ import annotations

import argparse
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def run_once(command: list[str], env: dict[str, str], forget_parses: bool = False) -> float:
    if forget_parses:  # (before the clock starts)
        for entry in (Path(env["XDG_CACHE_HOME"]) / "netc").glob("ast-*"):
            entry.unlink()
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cache = tempfile.mkdtemp(prefix="netc-bench-cache-")
    env["XDG_CACHE_HOME"] = cache
    try:
        measure(args.repeat, env)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def measure(repeat: int, env: dict[str, str]) -> None:
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.net"))
    netc = [sys.executable, "-m", "netc"]
    rows = [
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
        ("python -c 'pass'", [sys.executable, "-c", "pass"]),
        ("netc --help", [*netc, "--help"]),
        ("netc check specs/resnet50.net", [*netc, "check", "-q", "specs/resnet50.net"]),
        ("netc check specs/resnet152.net", [*netc, "check", "-q", "specs/resnet152.net"]),
        ("  the same, no parse cache", [*netc, "check", "-q", "specs/resnet152.net"]),
        ("netc summary specs/resnet152.net", [*netc, "summary", "specs/resnet152.net"]),
        (f"netc check specs/*.net ({len(specs)} specs)", [*netc, "check", "-q", *specs]),
    ]
    for _, command in rows:  # warm-up: bytecode caches, the Lark table cache, the disk
        run_once(command, env)
    times: dict[str, list[float]] = {label: [] for label, _ in rows}
    for _ in range(repeat):
        for label, command in rows:
            times[label].append(run_once(command, env, label.endswith("no parse cache")))
    torch_times = times[rows[0][0]]
    print(f"{len(rows)} commands, {repeat} interleaved rounds, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'command':45} {'median s':>9} {'IQR s':>15} {'vs import torch':>16}")
    for label, _ in rows:
        q1, median, q3 = quartiles(times[label])
        ratios = [t / base for t, base in zip(times[label], torch_times)]
        r1, ratio, r3 = quartiles(ratios)
        print(f"{label:45} {median:9.3f} {q1:7.3f}-{q3:<7.3f} {ratio:8.3f}x "
              f"({r1:.3f}-{r3:.3f})")


if __name__ == "__main__":
    main()
