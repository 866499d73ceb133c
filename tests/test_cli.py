"""The `netc` command line: exit codes, diagnostics format, artifacts, and no torch in check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, SPECS

PYTHON = sys.executable


def netc(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([PYTHON, "-m", "netc", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=300)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


BAD_ADD = """
    block Bottleneck(planes) {
      y = in >> conv1: conv(planes, 1) >> bn1: bn >> relu
             >> conv3: conv(planes * 4, 1) >> bn3: bn
      out relu(y + in)
    }
    net Broken() {
      input image: [64, 56, 56]
      out image >> block1: Bottleneck(64) >> gap >> flatten >> fc: linear(10)
    }
"""


@pytest.mark.parametrize("command", [[], ["check"], ["build"]])
def test_help_everywhere(command):
    result = netc(*command, "--help")
    assert result.returncode == 0
    assert "usage: netc" in result.stdout


def test_check_valid_specs_exit_zero():
    result = netc("check", *sorted(SPECS.glob("*.net")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok: ") == len(list(SPECS.glob("*.net")))


def test_shape_mismatch_names_file_line_column_and_both_shapes(tmp_path):
    spec = write(tmp_path, "bad.net", BAD_ADD)
    result = netc("check", "bad.net", cwd=tmp_path)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first == ("bad.net:4:12: error[E301]: cannot add [256, 56, 56] and [64, 56, 56]: "
                     "channels differ")
    assert "\n4 |   out relu(y + in)" in result.stderr
    assert "^^^^^^" in result.stderr
    assert "`y` is [256, 56, 56], from `block1.bn3`" in result.stderr
    assert "= help:" in result.stderr
    assert "Traceback" not in result.stderr


def test_syntax_error_says_what_was_expected_in_words(tmp_path):
    write(tmp_path, "syntax.net", """
        net N() {
          input x: [3, 32, 32]
          out x >> >> relu
        }
    """)
    result = netc("check", "syntax.net", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("syntax.net:3:12: error[E101]: unexpected `>>`: "
                                    "expected a layer, a block call or a list of layers after `>>`")


def test_unclosed_bracket_points_at_the_opening_one(tmp_path):
    write(tmp_path, "open.net", "net N() {\n  input x: [3, 8, 8]\n  out x >> conv(8, 3\n}\n")
    result = netc("check", "open.net", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("open.net:3:16: error[E104]: `(` is never closed")


def test_json_format(tmp_path):
    write(tmp_path, "bad.net", BAD_ADD)
    result = netc("check", "--format", "json", "bad.net", cwd=tmp_path)
    assert result.returncode == 1
    (diag,) = json.loads(result.stdout)
    assert (diag["code"], diag["file"], diag["line"], diag["column"]) == ("E301", "bad.net", 4, 12)
    assert diag["severity"] == "error" and diag["hint"]


def test_many_errors_in_one_run_sorted_by_position(tmp_path):
    write(tmp_path, "two.net", """
        net N() {
          input x: [3, 32, 32]
          a = x >> conv(8, 3) >> flatten >> maxpool(2)
          b = x >> conv(8, 3, stride = 0)
          out x >> gap >> flatten >> fc: linear(nope)
        }
    """)
    result = netc("check", "--format", "json", "two.net", cwd=tmp_path)
    assert result.returncode == 1
    lines = [d["line"] for d in json.loads(result.stdout)]
    assert lines == [3, 4, 5]


def test_missing_file_and_bad_usage_exit_two(tmp_path):
    assert netc("check", "nope.net", cwd=tmp_path).returncode == 2
    assert netc("frobnicate", cwd=tmp_path).returncode == 2
    assert netc("check", str(SPECS / "resnet18.net"), "-D", "oops").returncode == 2
    assert netc("check", str(SPECS / "resnet18.net"), "--input", "3,x,4").returncode == 2


def test_unknown_override_is_a_spec_error_with_suggestion():
    result = netc("check", SPECS / "resnet18.net", "-D", "num_clases=10")
    assert result.returncode == 1
    assert "did you mean `num_classes`?" in result.stderr


def test_overrides_and_input_size_change_the_checked_net():
    result = netc("check", SPECS / "resnet50.net", "-D", "num_classes=10", "--input", "3,64,64")
    assert result.returncode == 0, result.stderr
    assert "image [3, 64, 64] -> [10]" in result.stdout
    result = netc("check", SPECS / "resnet50.net", "-D", "block=BasicBlock",
                  "-D", "layers=[2, 2, 2, 2]")
    assert result.returncode == 0, result.stderr


def test_too_small_input_shows_the_size_formula():
    result = netc("check", SPECS / "simple_cnn.net", "--input", "3,1,1")
    assert result.returncode == 1
    assert "floor((1 + 2*0 - (2 - 1) - 1)/2) + 1 = 0" in result.stderr


def test_check_never_imports_torch(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import netc
        from netc.cli import main
        assert main(["check", "-q", {str(SPECS / 'resnet152.net')!r}]) == 0
        assert netc.check({str(SPECS / 'resnet50.net')!r}) == []
        assert netc.check({str(SPECS / 'resnet50.net')!r}, num_classes=10) == []
        src = netc.generate_source({str(SPECS / 'simple_cnn.net')!r}).src
        assert "torch" not in sys.modules, "netc check imported torch"
        print("clean")
    """)
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


def test_build_writes_torchscript_that_loads_without_netc(tmp_path):
    result = netc("build", SPECS / "simple_cnn.net", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / "simple_cnn.pt"
    assert artifact.is_file()
    assert "params   2,122,186" in result.stdout
    assert "output   [10]" in result.stdout
    assert str(artifact.name) in result.stdout
    # a fresh process in which `import netc` fails must load and run it
    code = textwrap.dedent(f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        sys.modules["netc"] = None
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import torch
        from fill import fill_input
        model = torch.jit.load({str(artifact)!r})
        out = model(fill_input((1, 3, 32, 32)))
        torch.save(out, {str(tmp_path / 'scripted_out.pt')!r})
    """)
    loaded = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    import torch
    import netc as netc_api
    from fill import fill_input
    eager = netc_api.build(SPECS / "simple_cnn.net").eval()
    scripted = torch.jit.load(str(artifact))
    eager.load_state_dict(scripted.state_dict())
    with torch.no_grad():
        expected = eager(fill_input((1, 3, 32, 32)))
    torch.testing.assert_close(torch.load(tmp_path / "scripted_out.pt"), expected, rtol=0, atol=0)


def test_build_of_a_broken_spec_writes_nothing(tmp_path):
    write(tmp_path, "bad.net", BAD_ADD)
    result = netc("build", "bad.net", "-o", "out.pt", cwd=tmp_path)
    assert result.returncode == 1
    assert "error[E301]" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.net"]


def test_build_python_source_and_export(tmp_path):
    result = netc("build", SPECS / "simple_cnn.net", "--format", "py", "-o", "model.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    source = (tmp_path / "model.py").read_text()
    assert "class SimpleCNN(nn.Module)" in source and "import netc" not in source
    result = netc("build", SPECS / "simple_cnn.net", "--format", "export", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "simple_cnn.pt2").is_file()


def test_limits_are_configurable():
    result = netc("check", SPECS / "resnet50.net", "--limit", "params=1e6")
    assert result.returncode == 1
    assert "25,557,032 parameters, beyond the limit of 1,000,000" in result.stderr
    assert netc("check", SPECS / "resnet50.net", "--limit", "params=1e9").returncode == 0
    assert netc("check", SPECS / "resnet50.net", "--limit", "bogus=1").returncode == 2


def test_internal_errors_exit_three_with_a_request_to_report(tmp_path, monkeypatch):
    """A bug in netc is reported as such, never as a spec error or a bare traceback."""
    code = textwrap.dedent(f"""
        import sys
        import netc.compiler
        def boom(*args, **kwargs):
            raise KeyError("simulated bug")
        netc.compiler.compile_spec = boom
        from netc.cli import main
        sys.exit(main(["check", {str(SPECS / 'resnet18.net')!r}]))
    """)
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "internal error" in result.stderr and "please report" in result.stderr
    assert "Traceback" not in result.stderr
