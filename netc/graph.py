"""`netc graph`: the network as a picture (Graphviz DOT, Mermaid; SVG and PNG through `dot`).

Blocks (the nodes' scopes: `layer1`, `layer1.0`, `layer1.0.downsample`) are drawn as nested
clusters; `depth` collapses every block at that depth into one box, so ResNet-152 stays
readable. Edges carry the shape of the tensor they carry. Three kinds of edge are drawn
apart from the main flow: **skip** (the shorter operand of an add: identity or projection
shortcuts, dashed blue), **concat** (operands of a concatenation, bold green, numbered in
order) and **gate** (an operand broadcast over a map by a multiply: SE / SK / split attention,
dashed red). Nothing here imports torch; images need the Graphviz `dot` binary.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from dataclasses import dataclass, field

from netc.analysis import analyse
from netc.ir import Graph, Node
from netc.shapes import Multi, format_shape
from netc.report import describe_op

TEXT_FORMATS = {"dot": (".dot", ".gv"), "mermaid": (".mmd", ".mermaid")}
IMAGE_FORMATS = {"svg": (".svg",), "png": (".png",)}
FORMATS = {**TEXT_FORMATS, **IMAGE_FORMATS}

FILL = {
    "input": "#fdd0a2", "output": "#fdd0a2", "conv": "#c6dbef", "linear": "#c6dbef",
    "bn": "#e0e0e0", "pool": "#fee6ce", "act": "#d9f0d3", "merge": "#ffffff",
    "block": "#dadaeb", "other": "#f7f7f7",
}
EDGE_STYLE = {  # kind -> DOT attributes
    "flow": 'color="#555555"',
    "skip": 'color="#1f77b4", style=dashed, fontcolor="#1f77b4"',
    "concat": 'color="#2ca02c", penwidth=2, fontcolor="#2ca02c"',
    "gate": 'color="#d62728", style=dashed, fontcolor="#d62728"',
}
MERMAID_ARROW = {"flow": "-->", "skip": "-.->", "concat": "==>", "gate": "-.->"}
MERMAID_COLOUR = {"skip": "#1f77b4", "concat": "#2ca02c", "gate": "#d62728"}
ACTIVATIONS = {"relu", "relu6", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid",
               "leaky_relu", "softmax", "radix_softmax", "dropout", "identity"}
POOLS = {"maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "gap", "gmp"}


class GraphvizMissing(RuntimeError):
    """The `dot` binary is needed for SVG and PNG."""


@dataclass
class Box:
    id: str
    lines: list[str]
    kind: str  # a FILL key
    clusters: tuple[str, ...]  # the enclosing blocks, outermost first
    shape: str = "box"


@dataclass
class Edge:
    src: str
    dst: str
    label: str
    kind: str  # flow / skip / concat / gate


@dataclass
class Picture:
    """Boxes, edges and the nested clusters, ready to write as DOT or Mermaid."""

    name: str
    boxes: dict[str, Box] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)


def _kind(node: Node) -> tuple[str, str, str]:
    """(colour key, DOT node shape, short label) for a node."""
    op = node.op
    if op == "input":
        return "input", "box", ""
    if op in ("conv", "linear"):
        return op, "box", ""
    if op == "bn":
        return "bn", "box", ""
    if op in POOLS:
        return "pool", "box", ""
    if op in ACTIVATIONS:
        return "act", "box", ""
    if op == "add":
        return "merge", "circle", "+"
    if op == "mul":
        return "merge", "circle", "×"
    if op == "cat":
        return "merge", "ellipse", "cat"
    return "other", "box", ""


def _depth_of_longest_path(graph: Graph) -> dict[str, int]:
    depth: dict[str, int] = {}
    for node in graph:
        depth[node.id] = 1 + max((depth[i] for i in node.inputs), default=-1)
    return depth


def _spatial(shape):
    return shape[1:] if isinstance(shape, tuple) and not isinstance(shape, Multi) \
        and len(shape) == 3 else None


def edge_kinds(graph: Graph) -> dict[tuple[str, int], str]:
    """(consumer, operand index) -> flow / skip / concat / gate."""
    longest = _depth_of_longest_path(graph)
    kinds = {}
    for node in graph:
        for index, producer in enumerate(node.inputs):
            kind = "flow"
            if node.op == "cat":
                kind = "concat"
            elif node.op == "mul":
                shape = graph.node(producer).shape
                if _spatial(shape) not in (None, _spatial(node.shape)):
                    kind = "gate"
            elif node.op == "add" and len(set(node.inputs)) > 1:
                main = max(node.inputs, key=lambda i: (longest[i], graph.node(i).order))
                if producer != main:
                    kind = "skip"
            kinds[node.id, index] = kind
    return kinds


def build_picture(graph: Graph, depth: int | None = None) -> Picture:
    """The graph as boxes and edges, blocks deeper than `depth` collapsed to one box."""
    picture = Picture(graph.name)
    analysis = analyse(graph, with_min_input=False)
    kinds_of_scope = getattr(graph, "scope_kinds", {}) or {}
    box_of: dict[str, str] = {}
    collapsed: dict[str, list[Node]] = {}
    for node in graph:
        if node.op == "getitem":  # drawn as a labelled edge from the split
            continue
        if depth is not None and len(node.scope) >= depth:
            prefix = node.scope[:depth]
            box_id = "block:" + ".".join(prefix)
            box_of[node.id] = box_id
            collapsed.setdefault(box_id, []).append(node)
            if box_id not in picture.boxes:
                picture.boxes[box_id] = Box(box_id, [], "block", prefix[:-1], "box3d")
            continue
        box_of[node.id] = node.id
        colour, shape, short = _kind(node)
        stem = ".".join(node.scope)
        label = node.id[len(stem) + 1:] if stem and node.id.startswith(stem + ".") else node.id
        op = describe_op(node)
        if short:
            lines = [short]
        elif node.op == "input":
            lines = [label, format_shape(node.shape)]
        elif label.split("_")[0] == node.op or label == op:
            lines = [op]
        else:
            lines = [label, op]
        picture.boxes[node.id] = Box(node.id, lines, colour, node.scope, shape)
    for box_id, members in collapsed.items():
        name = box_id.split(":", 1)[1]
        prefix = tuple(name.split("."))
        params = sum(analysis.by_id[n.id].params for n in members)
        kind = kinds_of_scope.get(prefix, "")
        shown = prefix[-1] if len(prefix) > 1 else name  # its cluster names the rest
        lines = [shown] + ([kind] if kind else []) + [f"{len(members)} ops"]
        if params:
            lines.append(f"{params:,} params")
        picture.boxes[box_id].lines = lines

    kinds = edge_kinds(graph)
    seen: dict[tuple[str, str, str], int] = {}

    def add_edge(src: str, dst: str, label: str, kind: str) -> None:
        if src == dst:
            return
        key = (src, dst, label)
        if key in seen:  # several edges between one pair of boxes: draw one
            edge = picture.edges[seen[key]]
            if kind == "flow":
                edge.kind = "flow"
            return
        seen[key] = len(picture.edges)
        picture.edges.append(Edge(src, dst, label, kind))

    for node in graph:
        if node.op == "getitem":
            continue
        for index, producer_id in enumerate(node.inputs):
            producer = graph.node(producer_id)
            label = format_shape(producer.shape)
            if producer.op == "getitem":
                label = f"[{producer.args['index']}] {label}"
                producer = graph.node(producer.inputs[0])
            kind = kinds[node.id, index]
            if kind == "concat":
                label = f"#{index} {label}"
            elif kind == "gate":
                label = f"gate {label}"
            add_edge(box_of[producer.id], box_of[node.id], label, kind)
    for number, out in enumerate(graph.outputs):
        out_id = f"output:{number}"
        picture.boxes[out_id] = Box(out_id, ["output"], "output", ())
        add_edge(box_of[out], out_id, format_shape(graph.node(out).shape), "flow")
    return picture


# ---- DOT

def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


def _label(lines: list[str]) -> str:
    """A DOT label of several centred lines."""
    return '"' + "\\n".join(_escape(line) for line in lines) + '"'


def _cluster_tree(picture: Picture) -> dict[tuple[str, ...], list]:
    """For each cluster path, its boxes and child clusters, in first-seen order."""
    members: dict[tuple[str, ...], list] = {(): []}
    for box in picture.boxes.values():
        for i in range(1, len(box.clusters) + 1):
            prefix = box.clusters[:i]
            if prefix not in members:
                members[prefix] = []
                members[prefix[:-1]].append(("cluster", prefix))
        members[box.clusters].append(("box", box))
    return members


def render_dot(graph: Graph, depth: int | None = None, direction: str = "TB") -> str:
    picture = build_picture(graph, depth)
    members = _cluster_tree(picture)
    out = [f"digraph {_quote(picture.name)} {{",
           f'  graph [rankdir={direction}, fontname="Helvetica", fontsize=11, nodesep=0.25, '
           f'ranksep=0.3, labelloc=t, label={_quote(picture.name)}];',
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
           'height=0.3, margin="0.1,0.04"];',
           '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.6];']

    def emit(prefix: tuple[str, ...], indent: str) -> None:
        for what, item in members[prefix]:
            if what == "box":
                box = item
                extra = ', width=0.35, fixedsize=true' if box.shape == "circle" else ""
                style = ', style="filled"' if box.shape in ("circle", "ellipse") else ""
                out.append(f"{indent}{_quote(box.id)} [label={_label(box.lines)}, "
                           f'shape={box.shape}, fillcolor="{FILL[box.kind]}"{style}{extra}];')
            else:
                name = ".".join(item)
                out.append(f"{indent}subgraph {_quote('cluster_' + name)} {{")
                out.append(f'{indent}  label={_quote(item[-1] if len(item) > 1 else name)}; '
                           'labeljust=l; style="rounded,dashed"; color="#999999"; '
                           'fontsize=10;')
                emit(item, indent + "  ")
                out.append(f"{indent}}}")

    emit((), "  ")
    for edge in picture.edges:
        out.append(f"  {_quote(edge.src)} -> {_quote(edge.dst)} "
                   f"[label={_quote(edge.label)}, {EDGE_STYLE[edge.kind]}];")
    out.append("}")
    return "\n".join(out) + "\n"


# ---- Mermaid

def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(graph: Graph, depth: int | None = None, direction: str = "TB") -> str:
    picture = build_picture(graph, depth)
    members = _cluster_tree(picture)
    ids = {box_id: f"n{number}" for number, box_id in enumerate(picture.boxes)}
    out = [f"flowchart {direction}"]
    cluster_number = iter(range(1 << 30))

    def emit(prefix: tuple[str, ...], indent: str) -> None:
        for what, item in members[prefix]:
            if what == "box":
                text = _mermaid_text("<br/>".join(item.lines))
                if item.shape == "circle":
                    out.append(f'{indent}{ids[item.id]}(("{text}"))')
                elif item.kind in ("input", "output"):
                    out.append(f'{indent}{ids[item.id]}[/"{text}"/]')
                else:
                    out.append(f'{indent}{ids[item.id]}["{text}"]')
            else:
                title = item[-1] if len(item) > 1 else ".".join(item)
                out.append(f'{indent}subgraph c{next(cluster_number)} ["{_mermaid_text(title)}"]')
                emit(item, indent + "  ")
                out.append(f"{indent}end")

    emit((), "  ")
    styles = []
    for number, edge in enumerate(picture.edges):
        arrow = MERMAID_ARROW[edge.kind]
        out.append(f'  {ids[edge.src]} {arrow}|"{_mermaid_text(edge.label)}"| {ids[edge.dst]}')
        if edge.kind in MERMAID_COLOUR:
            styles.append(f"  linkStyle {number} stroke:{MERMAID_COLOUR[edge.kind]}")
    out += styles
    used = sorted({box.kind for box in picture.boxes.values()})
    for kind in used:
        out.append(f"  classDef {kind} fill:{FILL[kind]},stroke:#555555")
    for kind in used:
        members_of_kind = [ids[b.id] for b in picture.boxes.values() if b.kind == kind]
        out.append(f"  class {','.join(members_of_kind)} {kind}")
    return "\n".join(out) + "\n"


# ---- images

def render_image(dot_source: str, fmt: str, timeout: float = 300) -> bytes:
    """SVG or PNG bytes from DOT text, through Graphviz's `dot`."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing("Graphviz `dot` is not installed (Debian/Ubuntu: "
                              "`apt-get install graphviz`); write .dot or .mmd instead")
    result = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode("utf-8"),
                            capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def format_for(path: str | None, fmt: str | None) -> str:
    """The picture format: `fmt`, else the output's suffix, else DOT (on stdout). A suffix
    that names no picture format, or another one than `fmt`, is a ValueError: `-o net.pdf`
    must not quietly write DOT."""
    if path in (None, "-"):
        return fmt or "dot"
    suffix = Path(path).suffix.lower()
    implied = next((name for name, suffixes in FORMATS.items() if suffix in suffixes), None)
    if fmt and implied and implied != fmt:
        raise ValueError(f"-o {path}: the suffix {suffix} means --format {implied}, not {fmt}")
    if not (fmt or implied):
        known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
        raise ValueError(f"-o {path}: cannot tell the picture format from the suffix; use "
                         f"{known}, or give --format")
    return fmt or implied


def render(graph: Graph, fmt: str, depth: int | None = None, direction: str = "TB") -> bytes:
    """The picture in one of FORMATS, as bytes; `direction` TB (top to bottom) or LR."""
    if fmt == "mermaid":
        return render_mermaid(graph, depth, direction).encode("utf-8")
    dot = render_dot(graph, depth, direction)
    if fmt == "dot":
        return dot.encode("utf-8")
    return render_image(dot, fmt)
