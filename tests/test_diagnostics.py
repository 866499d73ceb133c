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


# ---- `netc explain`: every code has a text and examples that really break and really fix

from netc.explain import EXPLANATIONS, explain  # noqa: E402


@pytest.mark.parametrize("code", sorted(CODES))
def test_explain_examples_break_and_fix(code, tmp_path):
    from netc.cli import _parse_defines
    from netc.compiler import compile_spec

    entry = EXPLANATIONS[code]
    for text, flags, broken in ((entry.broken, entry.flags, True),
                                (entry.fixed, entry.fixed_flags, False)):
        spec = tmp_path / "example.net"
        spec.write_text(text)
        overrides = _parse_defines([flags[1]]) if flags else {}
        codes = [d.code for d in compile_spec(spec, overrides).diagnostics]
        if broken:
            assert code in codes, f"the broken example of {code} gives {codes}"
        else:
            assert codes == [], f"the fixed example of {code} still gives {codes}"
    assert explain(code).startswith(f"{code} {CODES[code]}: ")


def test_explain_command(capsys):
    assert main(["explain", "e301"]) == 0
    out = capsys.readouterr().out
    assert "Broken:" in out and "Fixed:" in out and "projection" in out
    assert main(["explain", "E999"]) == 2
    assert main(["explain", "--list"]) == 0
    assert capsys.readouterr().out.count("\n") >= len(CODES) - 1


# ---- `netc check` over many targets, `-W error`, and what a Diagnostic renders as

GOOD = "net N() {\n  input x: [3, 8, 8]\n  out x >> conv(4, 3)\n}\n"
WARN = "block Unused() { out in >> relu }\n" + GOOD


def test_check_reports_every_target_and_exits_with_the_worst(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "a.net").write_text(GOOD)
    (tmp_path / "b.net").write_text((CASES / "E301_channel_mismatch.net").read_text())
    assert main(["check", "a.net", "missing.net", "b.net"]) == 2
    captured = capsys.readouterr()
    assert "a.net: ok" in captured.out
    assert "cannot read `missing.net`" in captured.err
    assert "b.net:4:12: error[E301]" in captured.err
    assert captured.err.rstrip().endswith("1 error emitted\nfor more about this code, try "
                                          "`netc explain E301`")
    assert main(["check", "a.net", "b.net"]) == 1


def test_check_takes_a_directory_and_stdin(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "one.net").write_text(GOOD)
    (tmp_path / "sub" / "two.net").write_text(GOOD)
    assert main(["check", "sub"]) == 0
    assert capsys.readouterr().out.count(": ok: ") == 2
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD.replace("conv(4, 3)", "cnov(4, 3)")))
    assert main(["check", "-"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("<stdin>:3:12: error[E201]") and "3 |   out x >> cnov(4, 3)" in err
    assert not list(tmp_path.glob("netc-stdin-*"))  # the temporary copy is gone


def test_warnings_as_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.net").write_text(WARN)
    assert main(["check", "w.net"]) == 0
    assert "1 warning emitted" in capsys.readouterr().err
    assert main(["check", "-W", "error", "w.net"]) == 1
    assert "error[W202]" in capsys.readouterr().err


def test_str_of_a_diagnostic_is_the_rendered_text(monkeypatch):
    import netc

    monkeypatch.chdir(CASES)
    (d,) = netc.check("E302_spatial_mismatch.net")
    text = str(d)
    assert text.startswith("E302_spatial_mismatch.net:3:12: error[E302]")
    assert "3 |   out relu(y + in)" in text and "^^^^^^" in text and "= help:" in text


def test_json_carries_every_label_and_the_new_fields(monkeypatch, capsys):
    import json

    monkeypatch.chdir(CASES)
    assert main(["check", "--format", "json", "E302_spatial_mismatch.net"]) == 1
    (d,) = json.loads(capsys.readouterr().out)
    for key in ("code", "slug", "severity", "file", "line", "column", "end_line", "end_column",
                "message", "labels", "notes", "hint", "label", "context", "cause", "count"):
        assert key in d
    assert len(d["labels"]) >= 2 and all("end_line" in l for l in d["labels"])


# ---- context, one diagnostic per mistake, values and where they came from

def _check_text(tmp_path, text: str, **params):
    import netc

    spec = tmp_path / "spec.net"
    spec.write_text(text)
    return netc.check(spec, **params)


SE_ZERO = """
block SE(reduction = 16) {
  gate = in >> gap >> fc1: conv(in.c // reduction, 1) >> relu >> fc2: conv(in.c, 1) >> sigmoid
  out in * gate
}
net N() {
  input x: [10, 32, 32]
  out x >> se: SE()
}
"""


def test_a_computed_argument_shows_its_expression_values_and_instance(tmp_path):
    (d,) = _check_text(tmp_path, SE_ZERO)
    assert d.code == "E308"
    assert "in.c // reduction = 10 // 16 = 0" in d.hint and "max(1, " in d.hint
    (frame,) = d.context
    assert frame.instance == "se" and frame.block == "SE(reduction=16)"
    assert (frame.span.line, frame.span.col) == (8, 16)
    assert "in `se`, an instance of `SE(reduction=16)`, applied at" in str(d)


def test_a_library_net_applied_by_an_alias_names_the_users_line(tmp_path):
    """An assert failing inside `lib/resnet.net` for the user's alias: the outermost context
    is the alias with its arguments, at the user's line."""
    (d,) = _check_text(tmp_path, 'import "resnet"\n\nnet bad = ResNet(BasicBlock, [2, 2, 2, 2], '
                                 'groups = 2)\n')
    assert d.code == "E212" and d.span.file.endswith("resnet.net")
    outer = d.context[-1]
    assert outer.block == "ResNet(block=BasicBlock, layers=[2, 2, 2, 2], groups=2)"
    assert outer.span.file.endswith("spec.net") and (outer.span.line, outer.span.col) == (3, 1)
    assert d.context[0].instance == "layer1.0"


def test_a_value_from_the_command_line_is_reported_at_the_dash_d(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "n.net").write_text("net N(k = 4) {\n  input x: [3, 8, 8]\n  out x >> conv(k, 3)\n}\n")
    assert main(["check", "n.net", "-D", "k=0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("-D k: error[E308]")
    assert "3 |   out x >> conv(k, 3)" in err and "`k` is used here" in err
    (d,) = _check_text(tmp_path, (tmp_path / "n.net").read_text(), k=0)
    assert "from the call's arguments" in d.hint


def test_a_mistake_in_a_loop_is_reported_once_with_its_count(tmp_path):
    diags = _check_text(tmp_path, """
net N() {
  input x: [8, 32, 32]
  for i in 0..15 {
    x = x >> "conv {i}": conv(8, 3)
  }
  out x
}
""")
    assert [(d.code, d.count) for d in diags] == [("E209", 16)]
    assert "met 16 times" in str(diags[0])


def test_no_cascade_from_a_poisoned_list_nor_unused_warnings_after_an_error(tmp_path):
    diags = _check_text(tmp_path, """
block Layer() { out cat(in) >> conv(4, 3, 1, 0) }
block Unused() { out in }
net N() {
  input x: [8, 16, 16]
  fs = [x]
  for j in 1..3 {
    fs = fs + [fs >> "l{j}": Layer()]
  }
  out cat(fs)
}
""")
    assert [d.code for d in diags] == ["E311"]
    assert "padding 1 keeps 16x16" in diags[0].hint
    assert diags[0].span.line == 2  # the conv without padding, not the cat that meets it


def test_multi_line_spans_are_shown_whole_with_secondary_labels_in_one_snippet():
    from netc.diagnostics import Diagnostic, Label, render_one
    from netc.source import SourceFile, SourceMap, Span

    sources = SourceMap()
    sources.add(SourceFile("m.net", "a = b\nout cat(x,\n        y)\nz\n"))
    d = Diagnostic("E311", "boom", Span("m.net", 2, 5, 3, 11), labels=(
        Label(Span("m.net", 1, 1, 1, 2), "from here"),), label="this call", hint="fix it")
    text = render_one(d, sources)
    assert text.splitlines() == [
        "m.net:2:5: error[E311]: boom",
        "  |",
        "1 | a = b",
        "  | - from here",
        "2 | out cat(x,",
        "  |     ^^^^^^",
        "3 |         y)",
        "  |         ^^ this call",
        "  = help: fix it",
    ]
