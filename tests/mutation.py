"""Mutation testing of `netc check` against PyTorch itself.

Each mutant is a shipped spec with one edit (a number changed: channels, kernel, stride,
padding, expansion, repeat count...; a projection shortcut dropped; a group count broken).
Whether its shapes are *really* broken is decided without trusting netc's shape rules: the
net is elaborated permissively, lowered with lazy layers (PyTorch finds every input size
itself) and run forward. `netc check` must flag exactly the mutants PyTorch rejects.

    python tests/mutation.py            # every mutant, with a summary (slow: minutes)
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# (file to mutate, spec to check, input size): small inputs keep the forward passes cheap
TARGETS = [
    ("simple_cnn.net", "simple_cnn.net", None),
    ("resnet18.net", "resnet18.net", (3, 64, 64)),
    ("resnet50.net", "resnet50.net", (3, 64, 64)),
    ("lib/resnet.net", "resnet18.net", (3, 64, 64)),
    ("lib/resnet.net", "resnet50.net", (3, 64, 64)),
]

STRUCTURAL = [
    ("drop projection shortcut", re.compile(r"if stride != 1 or in\.c != (?:planes(?: \* 4)?|c) then .*? else in"),
     "in"),
    ("break group count", re.compile(r"groups = groups\)"), "groups = 3)"),
    ("bottleneck expands by 2", re.compile(r"conv3: conv\(planes \* 4, 1\)"), "conv3: conv(planes * 2, 1)"),
    ("shortcut strides twice", re.compile(r"\[conv\(c, 1, stride\), bn\]"), "[conv(c, 1, stride * 2), bn]"),
    ("stem without maxpool", re.compile(r" >> maxpool\(3, 2, 1\)"), ""),
    ("head without flatten", re.compile(r" >> flatten"), ""),
]


MAX_PARAMS = 150_000_000  # a mutant may be valid but too big to allocate here; skip those


@dataclass(frozen=True)
class Mutant:
    target: str
    spec: str
    input_shape: tuple | None
    description: str
    text: str


def _number_mutants(text: str) -> list[tuple[str, str]]:
    out = []
    for match in re.finditer(r"(?<![\w.])\d+(?![\w.])", text):
        line = text.count("\n", 0, match.start()) + 1
        if text[text.rfind("\n", 0, match.start()) + 1:match.start()].lstrip().startswith("#"):
            continue  # inside a comment
        value = int(match.group())
        for new in sorted({1, 3, value * 2, max(value // 2, 1)} - {value}):
            out.append((f"line {line}: {value} -> {new}",
                        text[:match.start()] + str(new) + text[match.end():]))
    return out


def mutants() -> list[Mutant]:
    result = []
    for target, spec, shape in TARGETS:
        text = (SPECS / target).read_text()
        edits = _number_mutants(text)
        for description, pattern, replacement in STRUCTURAL:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                edits.append((f"line {line}: {description}",
                               text[:match.start()] + replacement + text[match.end():]))
        result += [Mutant(target, spec, shape, d, t) for d, t in edits]
    return result


@dataclass
class Verdict:
    mutant: Mutant
    netc_errors: list[str]  # diagnostic codes from `netc check`
    torch_ok: bool | None  # None: not lowerable (a non-shape error, e.g. a bad argument)
    torch_error: str = ""

    @property
    def agrees(self) -> bool:
        if self.torch_ok is None:
            return bool(self.netc_errors) or self.torch_error.startswith("too large")
        return self.torch_ok == (not self.netc_errors)


def judge(mutant: Mutant, workdir: Path) -> Verdict:
    import torch
    from netc.codegen import emit_module
    from netc.compiler import compile_spec
    from netc.analysis import totals
    from netc.load import load_class

    copy = workdir / "specs"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(SPECS, copy)
    (copy / mutant.target).write_text(mutant.text)
    spec = copy / mutant.spec
    checked = compile_spec(spec, input_shape=mutant.input_shape)
    errors = [d.code for d in checked.diagnostics if d.is_error]
    loose = compile_spec(spec, input_shape=mutant.input_shape, permissive=True)
    if loose.graph is None or not loose.graph.outputs:
        return Verdict(mutant, errors, None)
    graph = loose.graph
    try:
        size = totals(graph).params
    except Exception:  # guessed shapes can defeat the cost rules; then just try it
        size = 0
    if size > MAX_PARAMS:
        return Verdict(mutant, errors, None, f"too large to run ({size:,} params)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = load_class(emit_module(graph, spec.name, lazy=True), "mutant")()
            inputs = [torch.randn(2, *i.shape) for i in graph.inputs]
            with torch.no_grad():
                output = module.eval()(*inputs)
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        return Verdict(mutant, errors, False, str(error).splitlines()[0][:120])
    if not errors:  # netc and PyTorch agree it runs: they must agree on the result's shape too
        static = tuple(checked.graph.node(checked.graph.outputs[0]).shape)
        if tuple(output.shape[1:]) != static:
            return Verdict(mutant, ["shape differs"], True,
                           f"netc {static}, torch {tuple(output.shape[1:])}")
    return Verdict(mutant, errors, True)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    all_mutants = mutants()
    broken = detected = valid = false_positive = unlowerable = too_large = 0
    disagreements = []
    with tempfile.TemporaryDirectory() as tmp:
        for mutant in all_mutants:
            verdict = judge(mutant, Path(tmp))
            if verdict.torch_ok is None and verdict.torch_error:
                too_large += 1
            elif verdict.torch_ok is None:
                unlowerable += 1
            elif verdict.torch_ok:
                valid += 1
                false_positive += bool(verdict.netc_errors)
            else:
                broken += 1
                detected += bool(verdict.netc_errors)
            if not verdict.agrees:
                disagreements.append(verdict)
                print("DISAGREE", verdict, flush=True)
    print(f"mutants: {len(all_mutants)}")
    print(f"shape-broken (PyTorch fails): {broken}, detected by netc check: {detected} "
          f"({100 * detected / max(broken, 1):.1f}%)")
    print(f"valid (PyTorch runs): {valid}, flagged by netc check: {false_positive} "
          f"({100 * false_positive / max(valid, 1):.1f}% false positives)")
    print(f"rejected before lowering (argument errors): {unlowerable}")
    print(f"valid but too large to run here (skipped): {too_large}")
    for v in disagreements:
        print(f"DISAGREE {v.mutant.target} ({v.mutant.spec}) {v.mutant.description}: "
              f"netc {v.netc_errors or 'ok'}, torch {'ok' if v.torch_ok else v.torch_error}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
