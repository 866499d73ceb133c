"""How long `netc check` takes as a whole process, next to `python -c "import torch"`.

    python bench/bench_check.py [--repeat 5]

Prints the median wall time of each command and their ratio, measured in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.net"))
    rows = [
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
        ("python -c 'pass'", [sys.executable, "-c", "pass"]),
        ("netc check specs/resnet50.net", [sys.executable, "-m", "netc", "check", "-q",
                                           str(ROOT / "specs" / "resnet50.net")]),
        ("netc check specs/resnet152.net", [sys.executable, "-m", "netc", "check", "-q",
                                            str(ROOT / "specs" / "resnet152.net")]),
        (f"netc check specs/*.net ({len(specs)} specs)",
         [sys.executable, "-m", "netc", "check", "-q", *specs]),
    ]
    results = [(label, wall(command, args.repeat)) for label, command in rows]
    torch_time = results[0][1]
    print(f"{'command':45} {'median s':>9} {'vs import torch':>16}")
    for label, seconds in results:
        print(f"{label:45} {seconds:9.3f} {seconds / torch_time:15.2f}x")


if __name__ == "__main__":
    main()
