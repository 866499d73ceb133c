"""Every shipped spec through every artifact format, at batch 3 and at a second input size:
TorchScript, torch.export and ONNX (run in onnxruntime) against the eager module.

    python bench/bench_artifacts.py [--specs resnet18,densenet121] [--json out.json]

Prints, per spec, the largest absolute difference from eager for each format at batch 3 at
the declared size and at a second size (96 px, or the declared size where the net fixes
it). "-" where the format does not run at that size (the net fixes its input size).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netc  # noqa: E402
from netc.api import lower  # noqa: E402
from netc.load import save_export, save_onnx, save_torchscript  # noqa: E402


def sizes_for(graph) -> list[tuple[int, ...]]:
    declared = tuple(graph.inputs[0].shape)
    second = (declared[0], 96, 96) if len(declared) == 3 else declared
    return [declared, second] if second != declared else [declared]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def measure(stem: str, folder: Path) -> dict:
    import onnxruntime as ort

    compiled = netc.compile(ROOT / "specs" / f"{stem}.net")
    module, _ = lower(compiled)
    module.eval()
    row = {"spec": stem}
    started = time.perf_counter()
    save_torchscript(module, folder / f"{stem}.pt")
    save_export(module, compiled.graph, folder / f"{stem}.pt2")
    save_onnx(module, compiled.graph, folder / f"{stem}.onnx")
    row["write_s"] = round(time.perf_counter() - started, 1)
    scripted = torch.jit.load(str(folder / f"{stem}.pt"))
    exported = torch.export.load(str(folder / f"{stem}.pt2")).module()
    session = ort.InferenceSession(str(folder / f"{stem}.onnx"),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for index, shape in enumerate(sizes_for(compiled.graph)):
        x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(index))
        with torch.no_grad():
            try:
                eager = module(x)
            except RuntimeError:  # the net fixes its input size (a linear after flatten)
                row[f"eager@{'x'.join(map(str, shape))}"] = "-"
                continue
            results = {"torchscript": lambda: scripted(x), "export": lambda: exported(x),
                       "onnx": lambda: torch.from_numpy(session.run(None, {name: x.numpy()})[0])}
            for fmt, run in results.items():
                try:
                    row[f"{fmt}@{'x'.join(map(str, shape))}"] = max_diff(run(), eager)
                except Exception as error:  # the format refuses this size
                    row[f"{fmt}@{'x'.join(map(str, shape))}"] = f"- ({type(error).__name__})"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--specs", help="comma-separated spec stems (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    stems = args.specs.split(",") if args.specs else sorted(
        p.stem for p in (ROOT / "specs").glob("*.net"))
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for stem in stems:
            row = measure(stem, Path(folder))
            rows.append(row)
            cells = "  ".join(f"{k}={v:.1e}" if isinstance(v, float) and k != "write_s" else f"{k}={v}"
                              for k, v in row.items() if k != "spec")
            print(f"{stem:20s} {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
