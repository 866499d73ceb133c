"""Measurements of one built variant, in the job's process: CPU forward latency (median and
interquartile range, interleaved with a fixed reference kernel that shows how busy the
machine was), one training step's time and peak memory, and the warnings that say when
those numbers cannot be trusted.
"""
from __future__ import annotations

import contextlib
import logging
import os
import statistics
import sys
import time

log = logging.getLogger("netc.sweep")


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


def quartiles(times: list[float]) -> tuple[float, float, float]:
    """First quartile, median, third quartile (Python's `statistics.quantiles`, inclusive)."""
    if len(times) < 2:
        return times[0], times[0], times[0]
    q1, q2, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, q2, q3


def load_per_core() -> float | None:
    """The 1-minute load average over the cores this process may use (Unix only): above 1,
    jobs wait for a core and latencies grow."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        return os.getloadavg()[0] / cores
    except (AttributeError, OSError):
        return None


def _reference_kernel(torch):
    """A fixed piece of work (a 128x128 matmul, same size every job): its spread across the
    run is the machine's noise, independent of the variant measured."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(128, 128, generator=generator)
    return lambda: a @ a


def measure(module, graph, bench: dict) -> dict:
    """CPU forward latency and one training step (forward + backward on random data,
    cross-entropy on logits: the median time of `train_runs` steps after one untimed step,
    and the peak tensor memory of a step above the model and its inputs).

    Latency: `runs` timed forwards after `warmup`, each followed by a timed reference
    kernel (interleaved, so that both see the same moments of the machine); reported as
    the median with its interquartile range. A row gets a `warning` when the IQR exceeds
    `max_spread` of the median (for the model or the reference), or when the load average
    per core is above 1 at the start or the end."""
    import torch

    threads = bench.get("threads")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        load_before = load_per_core()
        result = {"batch_size": bench["batch_size"], "threads": torch.get_num_threads()}
        shapes = [tuple(i.shape) for i in graph.inputs]
        module.eval()
        inputs = [torch.randn(bench["batch_size"], *s) for s in shapes]
        reference = _reference_kernel(torch)
        times, ref_times = [], []
        with torch.inference_mode():
            for _ in range(bench["warmup"]):
                module(*inputs)
                reference()
            for _ in range(bench["runs"]):
                tic = time.perf_counter()
                module(*inputs)
                times.append(time.perf_counter() - tic)
                tic = time.perf_counter()
                reference()
                ref_times.append(time.perf_counter() - tic)
        q1, median, q3 = quartiles(times)
        r1, ref_median, r3 = quartiles(ref_times)
        result.update(latency_ms=round(median * 1e3, 3), latency_iqr_ms=round((q3 - q1) * 1e3, 3),
                      latency_runs=len(times),
                      latency_spread=round((q3 - q1) / median, 3) if median else None,
                      reference_spread=round((r3 - r1) / ref_median, 3) if ref_median else None)
        if bench.get("train", True):
            result.update(_train_step(module, shapes, bench, torch))
        load_after = load_per_core()
        loads = [v for v in (load_before, load_after) if v is not None]
        result["load"] = round(max(loads), 2) if loads else None
        result["warning"] = spread_warning(result, bench.get("max_spread", 0.1))
        return result
    finally:
        torch.set_num_threads(old_threads)


def spread_warning(row: dict, max_spread: float) -> str | None:
    """Why this row's latency should not be trusted, or None."""
    reasons = []
    spread = row.get("latency_spread")
    if spread is not None and spread > max_spread:
        reasons.append(f"latency IQR {spread:.0%} of the median (> {max_spread:.0%})")
    ref = row.get("reference_spread")
    if ref is not None and ref > max_spread:
        reasons.append(f"reference kernel IQR {ref:.0%} (the machine was busy)")
    load = row.get("load")
    if load is not None and load > 1.0:
        reasons.append(f"load average {load:.1f} per core")
    return "; ".join(reasons) or None


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

