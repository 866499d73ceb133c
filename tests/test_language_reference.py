"""The language reference (grammar/README.md) is executable: every example in it is checked.

Each ```netc block is one spec. Its leading comment lines may say what it is:

    # fragment               a piece of syntax, not a whole spec: skipped
    # file: lib/units.net    a support file, written at that path next to every example
    # error: E301            must fail with exactly these error codes (comma-separated)
    # warning: W201          must warn with exactly these codes (without it: no warnings)
    # modules: conv1.0 bn1   the state_dict prefixes (layers with parameters), in order
    # output: [64, 16, 16]   the shape of the net's output

Any other block that contains a `net` must check with no diagnostics at all. A block with
neither a `net` nor a marker is reported, so that no example goes untested by accident.
Examples run in a fresh directory holding the repo's `specs/lib` (as `lib/`) and every
`# file:` block, so `import "lib/resnet.net"` works as it does in `specs/`.

```console blocks are checked too: each `$ netc check ...` line is run there (in-process)
and its output must equal the lines under it; `# exit status N` at the end of a command
line gives the expected exit status (0 otherwise). The line counts in "Why this syntax" are
compared with the shipped files.
"""
from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import netc
from netc.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "grammar" / "README.md"
LIB = ROOT / "specs" / "lib"

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
HEADER = re.compile(r"^#\s*(?:(fragment)\s*$|(file|error|warning|modules|output):\s*(.*?)\s*$)")
HAS_NET = re.compile(r"^\s*net\s+[A-Za-z_]", re.M)


@dataclass
class Example:
    line: int  # where the block starts in README.md
    text: str
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        first = next((l for l in self.text.splitlines() if l.strip() and not l.startswith("#")), "")
        return f"L{self.line}:{first.strip()[:40]}"

    def codes(self, key: str) -> set[str]:
        return {c.strip() for c in self.meta.get(key, "").split(",") if c.strip()}


def _blocks(language: str) -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) == language]


def _examples() -> list[Example]:
    examples = []
    for line, text in _blocks("netc"):
        meta = {}
        for header in text.splitlines():
            match = HEADER.match(header)
            if not match:
                break
            if match.group(1):
                meta["fragment"] = ""
            else:
                meta[match.group(2)] = match.group(3)
        examples.append(Example(line, text, meta))
    return examples


EXAMPLES = _examples()
SUPPORT = {e.meta["file"]: e.text for e in EXAMPLES if "file" in e.meta}
SPECS = [e for e in EXAMPLES if "fragment" not in e.meta and "file" not in e.meta
         and (HAS_NET.search(e.text) or "error" in e.meta)]


def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(LIB, tmp_path / "lib")
    for name, text in SUPPORT.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return tmp_path


def _assert_expected(example: Example, path: Path) -> None:
    compiled = netc.compile(path)
    diagnostics = compiled.diagnostics
    rendered = netc.NetcError(diagnostics, compiled.sources) if diagnostics else ""
    errors = {d.code for d in diagnostics if d.is_error}
    warnings = {d.code for d in diagnostics if not d.is_error}
    assert errors == example.codes("error"), f"README.md line {example.line}:\n{rendered}"
    assert warnings == example.codes("warning"), f"README.md line {example.line}:\n{rendered}"
    if errors:
        return
    graph = compiled.graph
    if "modules" in example.meta:
        # in state_dict order: a layer bound to a name is registered where it is written
        layers = sorted((n for n in graph if n.module), key=lambda n: n.order
                        if n.register_order is None else n.register_order)
        modules = [n.module for n in layers]
        assert modules == example.meta["modules"].split(), f"README.md line {example.line}"
    if "output" in example.meta:
        shape = "[" + ", ".join(map(str, graph.node(graph.outputs[0]).shape)) + "]"
        assert shape == example.meta["output"], f"README.md line {example.line}"


def test_the_reference_has_examples():
    assert len(SPECS) >= 40
    assert any("error" in e.meta for e in SPECS)


def test_every_block_is_a_spec_a_file_or_a_fragment():
    untested = [e.id for e in EXAMPLES
                if not ({"fragment", "file", "error"} & set(e.meta) or HAS_NET.search(e.text))]
    assert untested == [], "mark these `# fragment` or give them a `net`"


def test_support_file_names_are_unique():
    names = [e.meta["file"] for e in EXAMPLES if "file" in e.meta]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("example", SPECS, ids=[e.id for e in SPECS])
def test_example_checks_as_documented(example: Example, tmp_path: Path):
    path = _workdir(tmp_path) / "example.net"
    path.write_text(example.text, encoding="utf-8")
    _assert_expected(example, path)


@pytest.mark.parametrize("name", sorted(n for n, t in SUPPORT.items() if HAS_NET.search(t)))
def test_support_file_with_a_net_checks_as_documented(name: str, tmp_path: Path):
    example = next(e for e in EXAMPLES if e.meta.get("file") == name)
    _assert_expected(example, _workdir(tmp_path) / name)


def _console_sessions() -> list[tuple[int, str, list[str]]]:
    sessions = []
    for line, text in _blocks("console"):
        lines = text.splitlines()
        for index, command in enumerate(lines):
            if not command.startswith("$ netc check"):
                continue
            output = []
            for following in lines[index + 1:]:
                if following.startswith("$ "):
                    break
                output.append(following)
            sessions.append((line + 1 + index, command[2:], output))
    return sessions


SESSIONS = _console_sessions()


def test_the_reference_shows_netc_check():
    assert len(SESSIONS) >= 3


@pytest.mark.parametrize("session", SESSIONS, ids=[f"L{s[0]}" for s in SESSIONS])
def test_console_output_is_real(session, tmp_path, capsys, monkeypatch):
    line, command, expected = session
    command, _, status = command.partition("# exit status")
    argv = shlex.split(command)[1:]
    monkeypatch.chdir(_workdir(tmp_path))
    monkeypatch.setenv("NO_COLOR", "1")
    code = main(argv)
    captured = capsys.readouterr()
    output = (captured.err + captured.out).rstrip("\n").splitlines()
    assert code == int(status or 0), f"README.md line {line}: {command}"
    assert output == expected, f"README.md line {line}: {command}"


def test_resnet50_line_counts_are_current():
    """"Why this syntax" counts the shipped files; changing them must update the table."""
    row = next(l for l in README.read_text(encoding="utf-8").splitlines()
               if l.startswith("| netc:") and "specs/lib/resnet.net" in l)
    total, code = map(int, re.search(r"(\d+) in all, (\d+) of code", row).groups())
    lines = [line for name in ("lib/resnet.net", "resnet50.net")
             for line in (ROOT / "specs" / name).read_text(encoding="utf-8").splitlines()]
    assert total == len(lines)
    assert code == sum(1 for l in lines if l.strip() and not l.lstrip().startswith("#"))
