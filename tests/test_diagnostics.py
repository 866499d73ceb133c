"""The diagnostics catalogue: one small broken spec per code in tests/diagnostics/, each with
its rendered `netc check` output as a golden file (`pytest --update-golden` rewrites them;
review the diff by eye). A spec's file name starts with the code it must produce.

A first line `# flags: ...` passes extra command-line flags (e.g. `-D widht=16`).
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from netc.cli import main
from netc.diagnostics import CODES

CASES = Path(__file__).resolve().parent / "diagnostics"
SPECS = sorted(p.name for p in CASES.glob("*.net"))


def run_check(name: str, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(CASES)
    monkeypatch.setenv("NO_COLOR", "1")
    first = (CASES / name).read_text().splitlines()[0]
    flags = shlex.split(first.split(":", 1)[1]) if first.startswith("# flags:") else []
    status = main(["check", *flags, name])
    captured = capsys.readouterr()
    return status, captured.err + captured.out


@pytest.mark.parametrize("name", SPECS)
def test_diagnostic_matches_golden(name, capsys, monkeypatch, request):
    status, output = run_check(name, capsys, monkeypatch)
    code = name.split("_")[0]
    rendered = f"exit {status}\n{output}"
    golden = CASES / (Path(name).stem + ".out")
    if request.config.getoption("--update-golden"):
        golden.write_text(rendered)
    assert f"[{code}]" in output, f"{name} should report {code}"
    assert status == (1 if code.startswith("E") else 0)
    assert "Traceback" not in output
    assert golden.is_file(), f"no golden file; run pytest --update-golden and review {golden.name}"
    assert rendered == golden.read_text()


def test_every_code_has_a_case():
    covered = {name.split("_")[0] for name in SPECS}
    assert sorted(set(CODES) - covered) == []


def test_codes_are_stable_and_slugs_kebab_case():
    for code, slug in CODES.items():
        assert code[0] in "EW" and code[1:].isdigit() and len(code) == 4
        assert slug == slug.lower() and " " not in slug and "_" not in slug


def test_readme_lists_every_code():
    readme = (CASES.parent.parent / "README.md").read_text()
    for code, slug in CODES.items():
        assert f"| {code} | `{slug}` |" in readme
