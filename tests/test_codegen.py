"""The generated module source, as a golden file: stable names give stable diffs, and a
change to code generation shows up here for review (`pytest --update-golden`)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import netc
from conftest import SPECS

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("stem", ["simple_cnn", "resnet18"])
def test_generated_source_matches_golden(stem, request, monkeypatch):
    monkeypatch.chdir(SPECS.parent)
    source = netc.generate_source(f"specs/{stem}.net").src
    golden = GOLDEN / f"codegen_{stem}.py.txt"
    if request.config.getoption("--update-golden"):
        golden.write_text(source)
    assert source == golden.read_text()


def test_generated_source_is_plain_pytorch(tmp_path):
    """The `.py` artifact imports without netc and builds the same module."""
    path = tmp_path / "model.py"
    path.write_text(netc.generate_source(SPECS / "resnet18.net").src)
    code = textwrap.dedent(f"""
        import sys, importlib.util
        sys.modules["netc"] = None
        spec = importlib.util.spec_from_file_location("model", {str(path)!r})
        model = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model)
        net = model.resnet18()
        print(sum(p.numel() for p in net.parameters()))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "11689512"
