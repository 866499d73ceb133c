"""`netc summary`: the numbers equal the references, the text is a golden file, the JSON is
a contract for scripts, and none of it imports torch."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import netc
from conftest import PARITY, SPECS, reference
from netc.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden"
PYTHON = sys.executable


def run(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("stem", sorted(PARITY))
def test_params_and_macs_equal_the_reference(stem, capsys):
    """For every spec with a reference (the PARITY table, read when the tests run)."""
    status, out, err = run(capsys, "summary", SPECS / f"{stem}.net", "--format", "json")
    assert status == 0, err
    data = json.loads(out)
    ref = reference(PARITY[stem])
    assert data["params"] == ref["params"]
    assert data["buffers"] == ref["buffers"]
    assert data["macs"] == ref["flops"] // 2 == ref["macs"]
    assert data["output_shape"] == ref["output_shape"][1:]
    assert data["input_shape"] == ref["input_shape"][1:]
    assert sum(n["params"] for n in data["nodes"]) == data["params"]
    assert sum(n["macs"] for n in data["nodes"]) == data["macs"]


def test_json_contract(capsys):
    status, out, _ = run(capsys, "summary", SPECS / "resnet18.net", "--format", "json")
    data = json.loads(out)
    for key in ("params", "macs", "input_shape", "output_shape", "min_input", "nodes"):
        assert key in data
    assert data["input_shape"] == [3, 224, 224] and data["output_shape"] == [1000]
    assert data["min_input"]["shape"] == [3, 1, 1] and data["min_input"]["any_size"]
    assert data["doc"].startswith("ResNet-18")
    for node in data["nodes"]:
        assert {"name", "op", "shape", "params", "macs", "rf", "jump"} <= set(node)
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["maxpool"]["rf"] == [11, 11] and nodes["maxpool"]["jump"] == [4, 4]
    assert nodes["conv1"]["params"] == 9408 and nodes["conv1"]["macs"] == 118013952
    assert nodes["fc"]["rf"] == "global" and nodes["fc"]["jump"] is None
    assert nodes["layer1.0.add"]["elementwise"] == 64 * 56 * 56
    assert data["elementwise"] == sum(n["elementwise"] for n in data["nodes"])
    blocks = {b["name"]: b for b in data["blocks"]}
    assert blocks["layer4"]["rf"] == [435, 435] and blocks["layer4"]["jump"] == [32, 32]
    assert blocks["layer4"]["params"] == 8393728


def test_resnet50_stage_fields_in_the_json(capsys):
    status, out, _ = run(capsys, "summary", SPECS / "resnet50.net", "--format", "json")
    blocks = {b["name"]: b for b in json.loads(out)["blocks"]}
    assert (blocks["layer3"]["rf"], blocks["layer3"]["jump"]) == ([267, 267], [16, 16])
    assert (blocks["layer4"]["rf"], blocks["layer4"]["jump"]) == ([427, 427], [32, 32])


def _table(stem: str) -> str:
    return str(netc.summary(SPECS / f"{stem}.net"))


@pytest.mark.parametrize("stem", ["simple_cnn", "resnet18"])
def test_summary_text_matches_golden(stem, request):
    text = _table(stem)
    golden = GOLDEN / f"summary_{stem}.txt"
    if request.config.getoption("--update-golden"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("stem", ["simple_cnn", "resnet18"])
def test_golden_rows_add_up_to_the_totals(stem):
    """As torchinfo checks its own golden files: the top-level rows' params and MACs sum to
    the totals underneath."""
    text = (GOLDEN / f"summary_{stem}.txt").read_text()
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if set(line) == {"="}]
    rows = lines[rules[1] + 1:rules[2]]
    top = [row for row in rows if not row.startswith(("├", "└", "│", " "))]

    def number(cell: str) -> int:
        return 0 if cell == "-" else int(cell.replace(",", ""))

    columns = [re.split(r"\s{2,}", row) for row in top]
    params = sum(number(c[-4]) for c in columns)
    macs = sum(number(c[-3]) for c in columns)
    assert f"Params:           {params:,} " in text
    assert f"MACs:             {macs:,} " in text


def test_piped_cli_output_is_the_plain_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    result = subprocess.run([PYTHON, "-m", "netc", "summary", str(SPECS / "simple_cnn.net")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == _table("simple_cnn")
    assert "\x1b[" not in result.stdout


def test_rich_table_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    status, out, _ = run(capsys, "summary", SPECS / "resnet18.net", "--depth", "1")
    assert status == 0
    assert "\x1b[" in out and "layer4" in out and "435" in out
    assert "layer4.0" not in out


def test_depth_folds_blocks(capsys):
    status, out, _ = run(capsys, "summary", SPECS / "resnet50.net", "--depth", "1")
    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith("layer")}
    assert sorted(rows) == ["layer1", "layer2", "layer3", "layer4"]
    assert rows["layer3"][-2:] == ["267", "16"] and rows["layer4"][-2:] == ["427", "32"]
    _, deeper, _ = run(capsys, "summary", SPECS / "resnet50.net", "--depth", "2")
    assert "├─0" in deeper and "conv2" not in deeper
    _, full, _ = run(capsys, "summary", SPECS / "resnet50.net")
    assert "downsample" in full and "│ ├─conv2" in full


def test_csv_and_markdown(capsys):
    status, out, _ = run(capsys, "summary", SPECS / "simple_cnn.net", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows][:3] == ["image", "conv1", "relu"]
    fc1 = next(r for r in rows if r["name"] == "fc1")
    assert (fc1["params"], fc1["macs"], fc1["rf_h"]) == ("2097664", "2097152", "global")
    assert next(r for r in rows if r["name"] == "maxpool_1")["rf_h"] == "10"
    status, out, _ = run(capsys, "summary", SPECS / "resnet18.net", "--format", "markdown",
                         "--depth", "1")
    assert status == 0
    assert "| Layer | Op | Output shape | Params | MACs | RF | Stride |" in out
    assert "| **layer4** | sequence of 2 | `[512, 7, 7]` | 8,393,728 |" in out


def test_doc_comment_overrides_and_input_size(capsys):
    status, out, _ = run(capsys, "summary", SPECS / "resnet18.net", "-D", "num_classes=10",
                         "--input", "3,64,64", "--format", "json")
    data = json.loads(out)
    assert data["output_shape"] == [10] and data["input_shape"] == [3, 64, 64]
    status, out, _ = run(capsys, "summary", SPECS / "simple_cnn.net")
    assert out.startswith("SimpleCNN from the source documents")


def test_spec_errors_and_usage(capsys, tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("net N() {\n  input x: [3, 8, 8]\n  out x >> flatten >> gap\n}\n")
    status, out, err = run(capsys, "summary", bad)
    assert status == 1 and "error[E304]" in err and out == ""
    assert run(capsys, "summary", tmp_path / "missing.net")[0] == 2
    assert run(capsys, "summary", SPECS / "resnet18.net", "--depth", "0")[0] == 2


def test_python_api_returns_the_numbers():
    from netc import summary as function
    from netc.api import summary as api_function
    from netc.report import Summary
    assert function is api_function is netc.summary
    summary = netc.summary(SPECS / "resnet18.net", num_classes=10)
    assert isinstance(summary, Summary)
    assert summary.params == 11689512 - 513000 + 5130
    assert summary.output_shape == (10,)
    assert summary.node("maxpool").rf == (11, 11)
    assert summary.min_input.describe() == "any size >= 1x1"
    assert str(summary).startswith("ResNet-18")
    assert json.loads(json.dumps(summary.to_dict()))["macs"] == summary.macs
    with pytest.raises(netc.NetcError):
        netc.summary(SPECS / "resnet18.net", num_clases=10)


def test_summary_and_graph_never_import_torch(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import netc
        from netc.cli import main
        assert main(["summary", {str(SPECS / 'resnet152.net')!r}]) == 0
        assert main(["summary", "--format", "json", {str(SPECS / 'resnet50.net')!r}]) == 0
        assert main(["graph", {str(SPECS / 'resnet18.net')!r}, "--format", "mermaid"]) == 0
        assert main(["graph", {str(SPECS / 'simple_cnn.net')!r}, "-o",
                     {str(tmp_path / 'net.dot')!r}]) == 0
        netc.summary({str(SPECS / 'simple_cnn.net')!r})
        assert "torch" not in sys.modules, "summary or graph imported torch"
        print("clean")
    """)
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("clean")
