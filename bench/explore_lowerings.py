"""Which lowering of netc's optimised graph gets CPU inference to ONNX Runtime's speed?

    python bench/explore_lowerings.py [--models resnet50,mobilenet_v2] [--batch 1,8]
        [--rounds 5] [--warmup 1] [--candidates ort,netc,ofi,mkldnn,inductor]

An experiment (issue 11), not a regression bench: candidates are built from netc's own
modules and timed interleaved in one process, in rotating order, as bench/bench_optimize.py
does, at torch.set_num_threads(1) and 224x224. Every candidate is called three times and
its output checked against the plain eval module (within 1e-4 of the output's scale)
before anything is timed; one that fails or differs is dropped with a line saying why.
RESULT lines: median time, median per-round speed-up over eager, its interquartile range.

  eager        the reference (torchvision), eval, under inference_mode: 1.00
  ort          ONNX Runtime on netc's ONNX export of the plain module
  netc         netc.build(spec, optimize=True)
  ofi          torch.jit.optimize_for_inference(torch.jit.script(m)), m = netc optimised
               with drop_dropout_identity + fold_batchnorm only (ofi moves aten convs to
               oneDNN's blocked layout itself; netc's fused calls would hide them from it)
  mkldnn       torch.utils.mkldnn.to_mkldnn(m), the input converted to oneDNN's layout
               once and the output back once (fails where an op has no oneDNN kernel:
               hardtanh, i.e. relu6, in MobileNetV2)
  inductor     torch.compile(m, options={"freezing": True}); it compiles at the first call
               of each batch size, whose time is printed
  inductor-cw  the same with cpp_wrapper (the generated code calls kernels from C++)
  llga         torch.jit.freeze(torch.jit.script(m)) after torch.jit.enable_onednn_fusion(
               True): oneDNN Graph fuses partitions of the TorchScript graph, specialised
               to the shapes of its two profiling calls, so run one batch size per process
               (--batch 8); the switch is process-wide and makes `ofi` fail: run them apart
  llga-cl      the same with netc's channels_last pass as well
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.utils.mkldnn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import netc  # noqa: E402
from bench_optimize import close, onnx_session, quartiles, reference_entry  # noqa: E402
from refmodels import reference_model  # noqa: E402

FOLD_ONLY = ["drop_dropout_identity", "fold_batchnorm"]


class Mkldnn(torch.nn.Module):
    """A module whose convs/linears are oneDNN's, fed a oneDNN tensor, returning a dense one."""

    def __init__(self, module):
        super().__init__()
        self.inner = torch.utils.mkldnn.to_mkldnn(module)

    def forward(self, x):
        out = self.inner(x.to_mkldnn())
        return out.to_dense() if out.is_mkldnn else out


def build(stem, names, tmp, log):
    spec = ROOT / "specs" / f"{stem}.net"
    ref = reference_model(reference_entry(stem)).eval()
    compiled = netc.compile(spec)
    from netc.api import lower

    plain, _ = lower(compiled)
    plain.load_state_dict(ref.state_dict(), strict=True)
    plain.eval()
    weights = plain.state_dict()
    found = {"eager": ref}
    for name in names:
        start = time.perf_counter()
        try:
            if name == "ort":
                found[name] = onnx_session(plain, compiled.graph, 1, tmp)
            elif name == "netc":
                found[name] = netc.build(spec, optimize=True, weights=weights)
            elif name == "ofi":
                m = netc.build(spec, optimize=FOLD_ONLY, weights=weights)
                found[name] = torch.jit.optimize_for_inference(torch.jit.script(m))
            elif name in ("llga", "llga-cl"):
                torch.jit.enable_onednn_fusion(True)
                m = netc.build(spec, weights=weights, optimize=FOLD_ONLY + (
                    ["channels_last"] if name == "llga-cl" else []))
                found[name] = torch.jit.freeze(torch.jit.script(m))
            elif name == "mkldnn":
                found[name] = Mkldnn(netc.build(spec, optimize=FOLD_ONLY, weights=weights))
            elif name in ("inductor", "inductor-cw"):
                m = netc.build(spec, optimize=FOLD_ONLY, weights=weights)
                found[name] = torch.compile(m, options={
                    "freezing": True, "cpp_wrapper": name == "inductor-cw"})
        except Exception as error:  # noqa: BLE001 - an experiment: report and go on
            log(f"{stem} {name}: cannot build: {type(error).__name__}: {str(error)[:300]}")
            continue
        log(f"{stem} {name}: built in {time.perf_counter() - start:.1f} s")
    return plain, found


def run(stem, plain, found, batch, rounds, warmup, log):
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        expected = plain(x)
        for name in list(found):
            start = time.perf_counter()
            try:
                for _ in range(3):  # inductor compiles at the first; llga profiles two
                    out = found[name](x)
                error = close(out, expected)
            except Exception as exc:  # noqa: BLE001
                log(f"{stem} b{batch} {name}: fails: {type(exc).__name__}: {str(exc)[:300]}")
                del found[name]
                continue
            first = time.perf_counter() - start
            log(f"{stem} b{batch} {name}: error {error:.1e} of scale, first call {first:.1f} s")
            if error >= 1e-4:
                del found[name]
        names = list(found)
        times = {name: [] for name in names}
        for index in range(warmup + rounds):
            order = names[index % len(names):] + names[:index % len(names)]
            for name in order:
                start = time.perf_counter()
                found[name](x)
                if index >= warmup:
                    times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        ratios = [e / t for e, t in zip(times["eager"], values)]
        q1, median, q3 = quartiles(ratios)
        log(f"RESULT {stem:13} b{batch} {name:9} {statistics.median(values) * 1000:8.1f} ms "
            f"{median:5.2f}x ({q1:.2f}-{q3:.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--candidates", default="ort,netc,ofi,mkldnn,inductor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    log = lambda text: print(text, flush=True)  # noqa: E731
    log(f"torch {torch.__version__}, 1 thread, 224x224")
    with tempfile.TemporaryDirectory() as tmp:
        for stem in args.models.split(","):
            plain, found = build(stem, args.candidates.split(","), Path(tmp), log)
            for batch in map(int, args.batch.split(",")):
                run(stem, plain, dict(found), batch, args.rounds, args.warmup, log)


if __name__ == "__main__":
    main()
