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


# directory names (the spec's repository) with newlines, quotes and code; an import path
# cannot hold a newline or `"`, so the imported library's own directory gets the rest
HOSTILE_NAMES = [
    "repo\n        __import__('os').system('touch pwned_dir')\n        #",
    'repo"\'\\x \u2028 """ {0} %s',
    "repo\r\n# -*- coding: rot13 -*-\n",
]


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_hostile_file_and_directory_names_never_reach_code(hostile, tmp_path, monkeypatch):
    """Spec files and imported libraries whose names hold newlines, quotes and code: the
    generated source compiles, builds, and runs none of it (source locations are relative
    to the spec and quoted)."""
    import torch

    monkeypatch.chdir(tmp_path)
    root = tmp_path / hostile
    lib = root / "lib' ''' {x} # __import__('os').system('touch pwned_lib')"
    lib.mkdir(parents=True)
    (lib / "blocks.net").write_text("block Unit(c) { out in >> conv1: conv(c, 3) >> relu }\n")
    spec = root / "net\n__import__('os').system('touch pwned_spec')\n#.net"
    spec.write_text(f'import "{lib.name}/blocks.net"\n'
                    "net N() { input x: [3, 8, 8]\n  out x >> body: Unit(4) >> gap >> flatten }\n")
    compiled = netc.compile(spec)
    assert compiled.ok, compiled.diagnostics
    code = netc.generate_source(spec)
    compile(code.src, "<generated>", "exec")  # syntactically valid Python
    for line in code.src.splitlines():
        assert "__import__" not in line.split("#", 1)[0], line  # only ever inside a comment
    model = netc.build(spec)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    assert not list(tmp_path.rglob("pwned*"))
    assert str(tmp_path) not in code.src  # no absolute path of the building machine
