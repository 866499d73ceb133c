"""`netc graph`: DOT and Mermaid text always, SVG and PNG through Graphviz's `dot`."""
from __future__ import annotations

import re
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import netc
from conftest import SPECS
from netc.cli import main
from netc.graph import build_picture, edge_kinds, render_dot, render_mermaid

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")

SE_CAT = """
    ## A split, a concatenation, an SE gate and residual adds.
    block SE(c) {
      out in * (in >> gap >> fc1: conv(c // 4, 1) >> relu >> fc2: conv(c, 1) >> sigmoid)
    }
    block Unit(c, stride = 1) {
      y = in >> conv1: conv(c, 3, stride) >> bn1: bn >> relu >> conv2: conv(c, 3) >> bn2: bn
              >> se: SE(c)
      s = if stride != 1 or in.c != c then in >> down: conv(c, 1, stride) else in
      out relu(y + s)
    }
    net N() {
      input x: [3, 32, 32]
      a = x >> stem: conv(16, 3)
      b, c = split(a, 2)
      out cat(b >> l: conv(8, 3), c) >> u1: Unit(16) >> u2: Unit(32, 2) >> gap >> flatten
          >> fc: linear(10)
    }
"""


def graph_of(path: Path):
    compiled = netc.compile(path)
    assert compiled.ok
    return compiled.graph


@pytest.fixture
def se_cat(tmp_path) -> Path:
    path = tmp_path / "se_cat.net"
    path.write_text(textwrap.dedent(SE_CAT).lstrip())
    return path


def test_edge_kinds_skip_concat_gate(se_cat):
    graph = graph_of(se_cat)
    kinds = edge_kinds(graph)
    # the residual adds: the branch through the convs is the flow, the shortcut the skip
    assert kinds["u1.add", 0] == "flow" and kinds["u1.add", 1] == "skip"
    assert kinds["u2.add", 1] == "skip"  # a projection shortcut (`down`) is a skip too
    assert kinds["cat", 0] == kinds["cat", 1] == "concat"
    assert kinds["u1.se.mul", 0] == "flow" and kinds["u1.se.mul", 1] == "gate"
    dot = render_dot(graph)
    assert dot.count("style=dashed, fontcolor=\"#1f77b4\"") == 2  # two skips
    assert '"#0 [8, 32, 32]"' in dot and '"#1 [1] [8, 32, 32]"' in dot  # ordered, from split
    assert '"gate [16, 1, 1]"' in dot


def test_resnet18_skip_edges_and_clusters():
    graph = graph_of(SPECS / "resnet18.net")
    kinds = edge_kinds(graph)
    assert sum(kind == "skip" for kind in kinds.values()) == 8  # one per BasicBlock
    dot = render_dot(graph)
    assert 'subgraph "cluster_layer2" {' in dot and 'subgraph "cluster_layer2.0" {' in dot
    assert '"layer2.0.conv1" -> "layer2.0.bn1" [label="[128, 28, 28]"' in dot
    assert '"fc" -> "output:0" [label="[1000]"' in dot


def test_depth_collapses_blocks_so_resnet152_stays_readable():
    graph = graph_of(SPECS / "resnet152.net")
    full = build_picture(graph)
    stages = build_picture(graph, depth=1)
    blocks = build_picture(graph, depth=2)
    assert len(full.boxes) > 500
    names = [b.lines[0] for b in stages.boxes.values()]
    assert names == ["image", "conv1", "bn1", "relu", "maxpool 3x3/2 p1", "layer1", "layer2",
                     "layer3", "layer4", "gap", "flatten", "fc", "output"]
    assert len(stages.edges) == 12
    assert len(blocks.boxes) == 5 + (3 + 8 + 36 + 3) + 3 + 1  # stem, blocks, head, output
    layer3 = next(r for r in netc.summary(SPECS / "resnet152.net").rows() if r.id == "layer3")
    assert f"{layer3.params:,} params" in stages.boxes["block:layer3"].lines


def test_mermaid_is_well_formed(se_cat):
    text = render_mermaid(graph_of(se_cat))
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    opened = sum(line.strip().startswith("subgraph ") for line in lines)
    assert opened == sum(line.strip() == "end" for line in lines) == 4  # u1, u1.se, u2, u2.se
    defined = set(re.findall(r"^\s*(n\d+)[\[(]", text, re.M))
    for src, dst in re.findall(r"^\s*(n\d+) \S+\|\"[^\"]*\"\| (n\d+)$", text, re.M):
        assert src in defined and dst in defined
    assert '==>|"#0 [8, 32, 32]"|' in text  # concat
    assert '-.->|"gate [16, 1, 1]"|' in text  # gate
    assert "linkStyle" in text


@pytest.mark.parametrize("suffix, magic", [(".dot", b"digraph"), (".gv", b"digraph"),
                                           (".mmd", b"flowchart")])
def test_text_formats_from_the_suffix(tmp_path, capsys, suffix, magic):
    out = tmp_path / f"net{suffix}"
    assert main(["graph", str(SPECS / "simple_cnn.net"), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_stdout_and_usage_errors(capsys, tmp_path):
    assert main(["graph", str(SPECS / "simple_cnn.net")]) == 0
    assert capsys.readouterr().out.startswith('digraph "SimpleCNN"')
    assert main(["graph", str(SPECS / "simple_cnn.net"), "--format", "mermaid"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TB")
    assert main(["graph", str(SPECS / "simple_cnn.net"), "--format", "png"]) == 2
    assert main(["graph", str(tmp_path / "missing.net")]) == 2


@needs_dot
def test_svg_is_well_formed_xml(tmp_path, capsys):
    out = tmp_path / "resnet18.svg"
    assert main(["graph", str(SPECS / "resnet18.net"), "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"layer1", "conv1", "[64, 56, 56]", "[1000]"} <= texts
    assert sum(1 for g in root.iter("{http://www.w3.org/2000/svg}g")
               if g.get("class") == "cluster") == 4 + 8 + 3  # stages, blocks, downsamples


@needs_dot
def test_png_and_collapsed_svg(tmp_path, capsys):
    png = tmp_path / "net.png"
    assert main(["graph", str(SPECS / "simple_cnn.net"), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "r152.svg"
    assert main(["graph", str(SPECS / "resnet152.net"), "--depth", "1", "-o", str(svg)]) == 0
    ET.parse(svg)


def test_missing_graphviz_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["graph", str(SPECS / "simple_cnn.net"), "-o", str(tmp_path / "x.svg")]) == 2
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert not (tmp_path / "x.svg").exists()
