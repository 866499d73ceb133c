"""No input crashes or hangs the compiler: text generated from the grammar, and the shipped
specs mutated token by token, only ever yield diagnostics.

CI runs a few hundred examples; `NETC_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py` runs
many more locally.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.lark import from_lark

from netc.compiler import compile_spec
from netc.diagnostics import Diagnostic
from lark import Lark

from netc.parser import grammar_path

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "specs"
EXAMPLES = int(os.environ.get("NETC_FUZZ_EXAMPLES", "150"))
TIME_LIMIT_S = 10.0  # per input; a hang or a blow-up fails the test

FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get(
    "NETC_FUZZ_RANDOM"), suppress_health_check=list(HealthCheck))

# specs and the libraries they import, as mutation targets: (file to mutate, spec to check)
TARGETS = [(p.relative_to(SPEC_DIR).as_posix(), p.name) for p in sorted(SPEC_DIR.glob("*.net"))]
TARGETS += [(p.relative_to(SPEC_DIR).as_posix(), "resnet50.net")
            for p in sorted((SPEC_DIR / "lib").glob("*.net"))]
TOKEN = re.compile(r'"[^"\n]*"|\d+(?:\.\d+)?|[A-Za-z_]\w*|>>|\*\*|//|[=!<>]=|\.\.|\S')


def assert_only_diagnostics(spec: Path) -> None:
    start = time.perf_counter()
    result = compile_spec(spec)  # anything raised here is an internal error: the test fails
    assert time.perf_counter() - start < TIME_LIMIT_S, "compilation took too long"
    assert all(isinstance(d, Diagnostic) for d in result.diagnostics)
    if result.graph is not None:
        result.graph.check()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ_SETTINGS
@given(text=from_lark(Lark(grammar_path().read_text(), parser="lalr"), start="start"))
def test_text_from_the_grammar_only_gives_diagnostics(text, workdir):
    spec = workdir / "generated.net"
    spec.write_text(text, encoding="utf-8")
    assert_only_diagnostics(spec)


def mutate(text: str, kind: str, position: int, number: int) -> str:
    tokens = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
    start, end = tokens[position % len(tokens)]
    token = text[start:end]
    if kind == "delete":
        return text[:start] + text[end:]
    if kind == "duplicate":
        return text[:end] + " " + token + text[end:]
    if kind == "swap":
        s2, e2 = tokens[(position + 1) % len(tokens)]
        if s2 <= start:
            return text
        return text[:start] + text[s2:e2] + text[end:s2] + token + text[e2:]
    if kind == "number":
        numbers = [(m.start(), m.end()) for m in re.finditer(r"\b\d+\b", text)]
        if not numbers:  # a spec without a number (an alias like alexnet.net)
            return text
        s, e = numbers[position % len(numbers)]
        return text[:s] + str(number) + text[e:]
    if kind == "truncate":
        return text[:start]
    raise AssertionError(kind)


@FUZZ_SETTINGS
@given(target=st.sampled_from(TARGETS),
       kind=st.sampled_from(["delete", "duplicate", "swap", "number", "truncate"]),
       position=st.integers(0, 10_000),
       number=st.sampled_from([0, 1, 2, 3, 7, 64, 1000, 10**9, 10**30]))
def test_mutated_specs_only_give_diagnostics(target, kind, position, number, workdir):
    copy = workdir / "specs"
    if not copy.exists():
        shutil.copytree(SPEC_DIR, copy)
    mutated_file, spec = target
    original = (SPEC_DIR / mutated_file).read_text()
    try:
        (copy / mutated_file).write_text(mutate(original, kind, position, number))
        assert_only_diagnostics(copy / spec)
    finally:
        (copy / mutated_file).write_text(original)


@pytest.mark.parametrize("text", [
    "", "\x00\x01\x02", "net", "net N() {", "}}}}", "\ufeffnet N() { input x: [1]\n out x }",
    "net N() { input x: [3, 8, 8]\n out x >> conv(10**30, 3) }",
    "net N() { input x: [3, 8, 8]\n out x >> conv(1e999, 3) }",
    "net N() { input x: [3, 8, 8]\n out x >> conv(8, 3) * 99999999999 }",
    "net N() { input x: [3, 8, 8]\n y = 2 ** 2 ** 2 ** 2 ** 2 ** 2\n out x }",
    "net N() { input x: [99999999, 99999999, 99999999]\n out x >> conv(8, 3) }",
    "net N() { input x: [3, 8, 8]\n out x >> \"{x}\": conv(8, 3) }",
    "net N() { input x: [3, 8, 8]\n out x >> \"{\": conv(8, 3) }",
    "net N() { input x: [3, 8, 8]\n out x >> \"{1/0}\": conv(8, 3) }",
    "net N() { input x: [3, 8, 8]\n out in }",
    "block B() { input y: [3] \n out in }\nnet N() { input x: [3, 8, 8]\n out x >> B() }",
    "net N() { input x: [3, 8, 8]\n for i in x { y = i }\n out x }",
    "net N() { input x: [3, 8, 8]\n a, b = split(x, 3)\n out a }",
    "net N() { input x: [3, 8, 8]\n a, b = x\n out a }",
    "net N() { input x: [3, 8, 8]\n out [x] >> cat }",
    "net N() { input x: [3, 8, 8]\n out x >> softmax(5) }",
    "net N() { input x: [3, 8, 8]\n out x >> (conv(4, 3) >> relu) * 2 }",
    "net A = B()\nnet B = A()",
    "net N() { input x: [3, 8, 8]\n out x.nope }",
    "net N() { input x: [3, 8, 8]\n out [1, 2][5] }",
    "net N() { input x: [3, 8, 8]\n out x \u00e9 }",
])
def test_odd_inputs_only_give_diagnostics(text, workdir):
    spec = workdir / "odd.net"
    spec.write_text(text, encoding="utf-8")
    assert_only_diagnostics(spec)


def test_a_ten_megabyte_file_is_refused_quickly(workdir):
    spec = workdir / "huge.net"
    spec.write_text("# padding\n" * 1_000_000)
    start = time.perf_counter()
    result = compile_spec(spec)
    assert time.perf_counter() - start < 5
    assert [d.code for d in result.diagnostics] == ["E211"]
