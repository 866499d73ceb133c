"""Forward and train-step time of netc-built modules against their real references.

    python bench/bench_forward.py [--models resnet50,densenet121] [--threads 1,2]
        [--batch 1,8] [--pairs 20] [--size H] [--train/--no-train] [--json out.json]

Every spec with a torchvision or timm reference (tests/conftest.py PARITY, sources in
tests/reference/models.json) is built with `netc.build`, the reference is made through
tests/refmodels.py, and the reference's state_dict is loaded into netc's module
(strict=True); outputs are checked equal before anything is timed.

Each configuration (model, threads, batch) is warmed up, then timed in pairs: one netc call
and one reference call, the order alternating from pair to pair, so that whatever else the
machine is doing falls on both alike. Per pair we take the ratio netc / reference and report
its median with the interquartile range (25th-75th percentile of the per-pair ratios), and
the median times in ms. A ratio of 1.00 means as fast; an interquartile range that holds 1
means equal within noise. "fwd" is one forward call in eval mode under inference_mode;
"train" is one step in train mode: zero_grad, forward, backward of the output's sum, SGD.
A train row at batch 1 is skipped (for reference and netc alike) where the model has a
BatchNorm over one value per channel (the attention of timm's SK and ResNeSt models; any
pooled BatchNorm at a small --size): PyTorch refuses that in train mode.

--size shrinks the input (default: the reference's, 224 for all of them) for a quick run.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import netc  # noqa: E402
import zoo  # noqa: E402
from conftest import PARITY, reference  # noqa: E402
from refmodels import reference_model  # noqa: E402

REFERENCED = [stem for stem, name in PARITY.items()
              if reference(name)["source"] in ("torchvision", "timm")]
REFERENCED += sorted(set(zoo.ZOO) - set(REFERENCED))  # the torchvision zoo (tests/zoo.py)


def forward_step(model, x):
    with torch.inference_mode():
        model(x)


def train_step(model, x, optimizer):
    optimizer.zero_grad(set_to_none=True)
    model(x).sum().backward()
    optimizer.step()


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def compare(ours_step, ref_step, pairs: int, warmup: int = 3) -> dict:
    """Interleaved pairs: median times (ms) and the per-pair ratio's quartiles."""
    for _ in range(warmup):
        ours_step()
        ref_step()
    ours_t, ref_t = [], []
    runs = [(ours_step, ours_t), (ref_step, ref_t)]
    for i in range(pairs):
        for step, times in (runs[::-1] if i % 2 else runs):  # AB, BA, AB, ...
            times.append(timed(step))
    ratios = [o / r for o, r in zip(ours_t, ref_t)]
    q1, median, q3 = (statistics.quantiles(ratios, n=4, method="inclusive")
                      if len(ratios) > 1 else ratios * 3)
    return {"ref_ms": statistics.median(ref_t) * 1e3, "netc_ms": statistics.median(ours_t) * 1e3,
            "ratio": median, "q1": q1, "q3": q3}


def pair_of(stem: str):
    """netc's module and the reference, same weights, outputs checked equal; input shape."""
    if stem not in PARITY:  # the torchvision zoo: made as tests/zoo.py makes it
        torch.manual_seed(0)
        ref = zoo.reference(stem)
        ours = netc.build(ROOT / "specs" / f"{stem}.net", limits={"memory": 1 << 40}).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)
        return ours, ref, (3, zoo.ZOO[stem].size, zoo.ZOO[stem].size)
    entry = reference(PARITY[stem])
    torch.manual_seed(0)
    ref = reference_model(entry).eval()
    ours = netc.build(ROOT / "specs" / f"{stem}.net").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ours, ref, tuple(entry["input_shape"][1:])


def bench_model(stem: str, args) -> list[dict]:
    ours, ref, shape = pair_of(stem)
    if args.size:
        shape = (shape[0], args.size, args.size)
    x = torch.randn(2, *shape)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)
    modes = ["fwd"] + (["train"] if args.train else [])
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batch:
            x = torch.randn(batch, *shape)
            for mode in modes:
                for model in (ours, ref):
                    model.train(mode == "train")
                if mode == "fwd":
                    steps = [lambda m=m: forward_step(m, x) for m in (ours, ref)]
                else:
                    steps = [lambda m=m, o=torch.optim.SGD(m.parameters(), lr=1e-4):
                             train_step(m, x, o) for m in (ours, ref)]
                row = {"model": stem, "threads": threads, "batch": batch, "mode": mode,
                       "size": shape[-1]}
                try:
                    row |= compare(*steps, pairs=args.pairs)
                except ValueError as error:  # BatchNorm in train mode over one value
                    row["error"] = str(error).splitlines()[0]
                print_row(row)
                rows.append(row)
    return rows


HEADER = (f"{'model':18} {'thr':>3} {'batch':>5} {'mode':5} {'ref ms':>9} {'netc ms':>9} "
          f"{'netc/ref':>8}  {'IQR':13}")


def print_row(row: dict) -> None:
    head = f"{row['model']:18} {row['threads']:3} {row['batch']:5} {row['mode']:5}"
    if "error" in row:
        print(f"{head} skipped: {row['error'][:60]}...", flush=True)
    else:
        print(f"{head} {row['ref_ms']:9.2f} {row['netc_ms']:9.2f} {row['ratio']:8.3f}  "
              f"[{row['q1']:.3f}, {row['q3']:.3f}]", flush=True)


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def numbers(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=lambda s: s.split(","), default=REFERENCED,
                        help=f"comma-separated spec stems (default: all {len(REFERENCED)})")
    parser.add_argument("--threads", type=numbers, default=[1, 2])
    parser.add_argument("--batch", type=numbers, default=[1, 8])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--size", type=int, help="input height and width (default: reference's)")
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=True,
                        help="also time a train step")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(REFERENCED))
    if unknown:
        parser.error(f"no torchvision/timm reference for {', '.join(unknown)}; "
                     f"choose from {', '.join(REFERENCED)}")

    print(f"torch {torch.__version__}, {args.pairs} interleaved pairs per row; "
          f"netc/ref = median of per-pair ratios, IQR = its 25th-75th percentile")
    print(HEADER)
    rows = []
    for stem in args.models:
        rows += bench_model(stem, args)
    for mode in ("fwd", "train"):
        ratios = [r["ratio"] for r in rows if r["mode"] == mode and "error" not in r]
        if ratios:
            print(f"geometric mean netc/ref ({mode}, {len(ratios)} rows): {geomean(ratios):.3f}")
    if args.json:
        meta = {"torch": torch.__version__, "pairs": args.pairs, "size": args.size}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
