"""`netc build --optimize` against the strongest alternatives for CPU inference, side by side.

    python bench/bench_optimize.py [--models resnet50,mobilenet_v2] [--threads 1,2]
        [--batch 1,8] [--rounds 7] [--size 224] [--no-onnx]

For each model (ResNet-50, MobileNetV2, DenseNet-121, and EfficientNet-B0 and ConvNeXt-T
where specs/efficientnet_b0.net and specs/convnext_tiny.net exist), every candidate runs the
same input, interleaved in one process:

  eager      the reference itself (torchvision or timm), eval, under inference_mode: 1.00
  cl         the reference with channels_last weights and input
  ofi        torch.jit.optimize_for_inference(torch.jit.script(reference))
  ort        ONNX Runtime (all graph optimisations, intra-op threads = --threads) on netc's
             ONNX export of the plain module (the reference's weights)
  netc       netc.build(spec, optimize=True) with the reference's weights
  netc+fuse  (--variants) the same with fuse_conv_activation (off by default)

The reference's state_dict is loaded into netc's plain module (strict), outputs are checked
equal (rtol 1e-4 of the output's scale) before anything is timed. Each round calls every
candidate once, in a rotating order, so that a busy machine slows all alike; the table gives
per candidate the median time and the median speed-up over eager (eager time / its time,
per round) with the interquartile range of those per-round ratios. Finally, the geometric
mean of netc's speed-up, and of the best alternative's, over all rows.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import netc  # noqa: E402
from conftest import reference  # noqa: E402
from refmodels import reference_model  # noqa: E402

MODELS = ["resnet50", "mobilenet_v2", "densenet121", "efficientnet_b0", "convnext_tiny"]


def available(stem: str) -> bool:
    return (ROOT / "specs" / f"{stem}.net").is_file()


def reference_entry(stem: str) -> dict:
    try:
        return reference(stem)
    except StopIteration:  # not in models.json yet: torchvision's model of that name
        return {"name": stem, "source": "torchvision"}


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-6))


def onnx_session(module, graph, threads: int, tmp: Path):
    import onnxruntime

    from netc.load import save_onnx

    path = tmp / f"{graph.name}.onnx"
    save_onnx(module, graph, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def candidates(stem: str, threads: int, onnx: bool, tmp: Path, variants: bool) -> dict:
    """name -> (callable, wants channels_last input)."""
    ref = reference_model(reference_entry(stem)).eval()
    compiled = netc.compile(ROOT / "specs" / f"{stem}.net")
    from netc.api import lower

    plain, _ = lower(compiled)
    plain.load_state_dict(ref.state_dict(), strict=True)
    plain.eval()
    found = {"eager": (ref, False),
             "cl": (copy.deepcopy(ref).to(memory_format=torch.channels_last), True)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(Exception):  # a reference TorchScript cannot script
            found["ofi"] = (torch.jit.optimize_for_inference(torch.jit.script(copy.deepcopy(ref))),
                            False)
        if onnx:
            found["ort"] = (onnx_session(plain, compiled.graph, threads, tmp), False)
    found["netc"] = (netc.build(ROOT / "specs" / f"{stem}.net", optimize=True,
                                weights=plain.state_dict()), False)
    if variants:  # which passes pay: netc with fuse_conv_activation on
        from netc.optimize import DEFAULT_PASSES

        found["netc+fuse"] = (netc.build(
            ROOT / "specs" / f"{stem}.net", weights=plain.state_dict(),
            optimize=[*DEFAULT_PASSES, "fuse_conv_activation"]), False)
    return found


def run_case(stem, found, batch, size, rounds):
    x = torch.randn(batch, 3, size, size)
    xcl = x.contiguous(memory_format=torch.channels_last)
    names = list(found)
    with torch.inference_mode():
        expected = found["eager"][0](x)
        for name, (fn, cl) in found.items():
            error = close(fn(xcl if cl else x), expected)
            assert error < 1e-4, f"{stem} {name}: output differs by {error:.2g} of its scale"
        times = {name: [] for name in names}
        for index in range(rounds):
            order = names[index % len(names):] + names[:index % len(names)]
            for name in order:
                fn, cl = found[name]
                start = time.perf_counter()
                fn(xcl if cl else x)
                times[name].append(time.perf_counter() - start)
    return times


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--variants", action="store_true",
                        help="also netc+fuse: netc --optimize with fuse_conv_activation")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    args = parser.parse_args()
    import tempfile

    models = [m for m in args.models.split(",") if available(m)]
    skipped = [m for m in args.models.split(",") if not available(m)]
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} default threads, "
          f"input {args.size}x{args.size}, {args.rounds} interleaved rounds"
          + (f"; no spec yet for {', '.join(skipped)}" if skipped else ""))
    print(f"{'model':14} {'thr':>3} {'batch':>5} {'candidate':9} {'median ms':>10} "
          f"{'speed-up':>9} {'IQR':>13}")
    netc_ratios, best_ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for stem in models:
            for count in threads:
                torch.set_num_threads(count)
                found = candidates(stem, count, not args.no_onnx, Path(tmp), args.variants)
                for batch in batches:
                    run_case(stem, found, batch, args.size, args.warmup)
                    times = run_case(stem, found, batch, args.size, args.rounds)
                    speedups = {}
                    for name, values in times.items():
                        ratios = [e / t for e, t in zip(times["eager"], values)]
                        q1, median, q3 = quartiles(ratios)
                        speedups[name] = median
                        print(f"{stem:14} {count:3} {batch:5} {name:9} "
                              f"{statistics.median(values) * 1000:10.1f} {median:8.2f}x "
                              f"{q1:6.2f}-{q3:<6.2f}", flush=True)
                    netc_ratios.append(speedups["netc"])
                    best_ratios.append(max(v for k, v in speedups.items()
                                           if k not in ("eager",) and
                                           not k.startswith("netc")))
                    print(f"{'':14} netc / best alternative: "
                          f"{speedups['netc'] / best_ratios[-1]:.2f}x", flush=True)
    geo = lambda values: math.exp(sum(map(math.log, values)) / len(values))  # noqa: E731
    print(f"geometric mean speed-up over eager: netc {geo(netc_ratios):.2f}x, best "
          f"alternative per row {geo(best_ratios):.2f}x ({len(netc_ratios)} rows)")


if __name__ == "__main__":
    main()
