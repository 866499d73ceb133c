"""`netc summary`: the network as a torchinfo-style table, computed statically (no torch).

    import netc
    summary = netc.summary("specs/resnet50.net", num_classes=10)   # a Summary
    print(summary)                          # the table
    summary.params, summary.macs, summary.min_input, summary.node("layer3.5.relu_2").rf

This module is callable: `netc.summary(spec, **params)` is `netc.api.summary`.

`Summary` holds the numbers (from `netc.analysis`) and renders them: `str()` is the plain
text table, `render_rich` the same table for a terminal, `to_dict` / `to_json` / `to_csv` /
`to_markdown` the other formats. Rows form a tree of blocks (the nodes' scopes, i.e. their
module paths); `depth` folds blocks deeper than it into one row each.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from netc.analysis import GLOBAL, Analysis, NodeStats, analyse, human
from netc.ir import Graph
from netc.ops import conv_padding
from netc.shapes import Multi, format_shape
from netc.source import escape_controls

COLUMNS = ("Layer", "Op", "Output shape", "Params", "MACs", "RF", "Stride")
NUMERIC = {"Params", "MACs", "RF", "Stride"}
JSON_FORMAT = "netc-summary/1"


# ---- formatting of single values

def format_rf(rf) -> str:
    """`11` for a square field, `11x7` otherwise, `global`, or `-` (no spatial input)."""
    if rf is GLOBAL:
        return "global"
    if rf is None:
        return "-"
    return str(rf[0]) if rf[0] == rf[1] else f"{rf[0]}x{rf[1]}"


def format_count(count: int) -> str:
    return f"{count:,}" if count else "-"


def format_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{int(count)} B"


def describe_op(node) -> str:
    """The op with the arguments people read a table for: `conv 7x7/2`, `maxpool 3x3/2`."""
    op, args = node.op, node.args
    if op == "conv":
        # the padding used is always shown: netc's default ((k-1)//2, "same" at stride 1)
        # differs from PyTorch's 0, and a port that forgets `padding = 0` must be visible
        padding = "same" if args["padding"] == "same" else _pad(conv_padding(args))
        text = f"conv {_window(args['kernel_size'])}{_stride(args['stride'])} {padding}"
        if args["groups"] != 1:
            text += f" g{args['groups']}"
        if args["dilation"] != 1:
            text += f" d{_window(args['dilation'])}"
        return text
    if op in ("maxpool", "avgpool"):
        stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
        padding = "" if args["padding"] in (0, [0, 0]) else f" {_pad(args['padding'])}"
        return f"{op} {_window(args['kernel_size'])}{_stride(stride)}{padding}"
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        return f"{op} {_window(args['output_size'])}"
    if op in ("cat", "softmax") and args.get("dim", 0) != 0:
        return f"{op} dim={args['dim']}"
    if op == "split":
        return f"split {args['sections']}"
    if op == "getitem":
        return f"[{args['index']}]"
    if op == "radix_softmax":
        return f"radix_softmax {args['radix']}"
    return op


def _pad(value) -> str:
    """`p1`, or `p1x2` where the two sides differ."""
    if isinstance(value, int):
        return f"p{value}"
    return f"p{value[0]}" if value[0] == value[1] else f"p{value[0]}x{value[1]}"


def _window(value) -> str:
    if isinstance(value, int):
        return f"{value}x{value}"
    return f"{value[0]}x{value[1]}"


def _stride(value) -> str:
    if value == 1 or value == [1, 1]:
        return ""
    return f"/{value}" if isinstance(value, int) else f"/{value[0]}x{value[1]}"


def _shape_json(shape):
    if isinstance(shape, Multi):
        return [list(s) for s in shape]
    return list(shape) if shape is not None else None


def _rf_json(rf):
    if rf is GLOBAL:
        return "global"
    return list(rf) if rf is not None else None


# What a net's buffers are, by the op that holds them (`netc summary`'s Buffers line).
_BUFFER_WORDS = {"bn": "BatchNorm running statistics",
                 "window_attention": "relative-position indices",
                 "relative_attention": "relative-position indices"}


# ---- the tree of rows

@dataclass
class Row:
    """A line of the table: one node, or one block (a scope) with its nodes' sums."""

    id: str
    label: str  # the name relative to the enclosing block
    depth: int  # 1 = top level
    op: str
    shape: object = None
    params: int = 0
    macs: int = 0
    elementwise: int = 0
    rf: object = None
    rf_local: object = None
    jump: tuple | None = None
    is_block: bool = False
    children: list["Row"] = field(default_factory=list)
    output: str | None = None  # for a block: the node whose value leaves it
    hidden: bool = False  # `getitem` rows: the split above them shows their shapes


def _scope_outputs(graph: Graph) -> dict[tuple, str]:
    """For each scope, the last node (in order) whose value is used outside it."""
    outputs: dict[tuple, str] = {}
    last: dict[tuple, str] = {}
    returned = set(graph.outputs)
    for node in graph:
        consumers = [c.scope for c in graph.consumers(node.id)]
        for i in range(1, len(node.scope) + 1):
            prefix = node.scope[:i]
            last[prefix] = node.id
            if node.id in returned or any(c[:i] != prefix for c in consumers):
                outputs[prefix] = node.id
    return {prefix: outputs.get(prefix, last[prefix]) for prefix in last}


def build_rows(graph: Graph, analysis: Analysis) -> list[Row]:
    """The top-level rows; blocks hold their rows in `children`."""
    root = Row("", "", 0, "")
    blocks: dict[tuple, Row] = {(): root}
    kinds = getattr(graph, "scope_kinds", {}) or {}
    for stats in analysis.nodes:
        node = graph.node(stats.id)
        for i in range(1, len(node.scope) + 1):
            prefix = node.scope[:i]
            if prefix not in blocks:
                row = Row(".".join(prefix), prefix[-1], i, kinds.get(prefix, ""), is_block=True)
                blocks[prefix[:-1]].children.append(row)
                blocks[prefix] = row
        stem = ".".join(node.scope)
        label = stats.id[len(stem) + 1:] if stem and stats.id.startswith(stem + ".") else stats.id
        blocks[node.scope].children.append(Row(
            stats.id, label, len(node.scope) + 1, describe_op(node), stats.shape, stats.params,
            stats.macs, stats.elementwise, stats.rf, stats.rf_local, stats.jump,
            hidden=node.op == "getitem"))
        for i in range(1, len(node.scope) + 1):
            block = blocks[node.scope[:i]]
            block.params += stats.params
            block.macs += stats.macs
            block.elementwise += stats.elementwise
    outputs = _scope_outputs(graph)
    for prefix, row in blocks.items():
        if not prefix:
            continue
        out = analysis.by_id[outputs[prefix]]
        row.output, row.shape, row.rf, row.jump = out.id, out.shape, out.rf, out.jump
        row.rf_local = out.rf_local
        if not row.op:
            indexed = all(child.label.isdigit() for child in row.children)
            row.op = f"sequence of {len(row.children)}" if indexed else "block"
    return root.children


def visible_rows(rows: list[Row], depth: int | None) -> list[tuple[str, Row]]:
    """(tree prefix, row) for every row shown at this depth (torchinfo's `├─` / `└─`)."""
    shown = []

    def walk(children: list[Row], indent: str, top: bool) -> None:
        children = [row for row in children if not row.hidden]
        for index, row in enumerate(children):
            last = index == len(children) - 1
            branch = "" if top else ("└─" if last else "├─")
            shown.append((indent + branch, row))
            if row.children and (depth is None or row.depth < depth):
                walk(row.children, "" if top else indent + ("  " if last else "│ "), False)

    walk(rows, "", True)
    return shown


# ---- the summary

class Summary:
    """The numbers `netc summary` shows; `str()` is the plain-text table.

    Attributes people script against: `params`, `buffers`, `macs`, `elementwise`,
    `activations`, `input_shape`, `output_shape`, `min_input` (an `analysis.MinInput`),
    `rf` (the output's field), `nodes` (a list of `analysis.NodeStats`), `to_dict()`.
    """

    def __init__(self, graph: Graph, analysis: Analysis | None = None, *, spec: str | None = None,
                 depth: int | None = None, batch_size: int = 1):
        self.graph = graph
        self.analysis = analysis or analyse(graph)
        self.spec = spec
        self.depth = depth
        self.batch_size = batch_size

    # numbers
    name = property(lambda self: self.graph.name)
    doc = property(lambda self: self.graph.doc)
    nodes = property(lambda self: self.analysis.nodes)
    params = property(lambda self: self.analysis.params)
    buffers = property(lambda self: self.analysis.buffers)
    macs = property(lambda self: self.analysis.macs)
    elementwise = property(lambda self: self.analysis.elementwise)
    activations = property(lambda self: self.analysis.activations)
    min_input = property(lambda self: self.analysis.min_input)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.graph.inputs[0].shape)

    @property
    def output_shape(self):
        return self.graph.node(self.graph.outputs[0]).shape

    @property
    def rf(self):
        return self.analysis.by_id[self.graph.outputs[0]].rf

    def node(self, node_id: str) -> NodeStats:
        return self.analysis.by_id[node_id]

    def memory(self, batch_size: int | None = None) -> dict[str, int]:
        batch = self.batch_size if batch_size is None else batch_size
        a = self.analysis
        return {"batch": batch, "input_bytes": a.input_bytes(batch),
                "activation_bytes": a.activation_bytes(batch), "param_bytes": a.param_bytes,
                "buffer_bytes": a.buffer_bytes}

    def rows(self) -> list[Row]:
        return build_rows(self.graph, self.analysis)

    # text
    def totals_lines(self) -> list[tuple[str, str]]:
        a = self.analysis
        mem = self.memory()
        lines = [
            ("Params", _count(a.params)),
            ("Buffers", f"{a.buffers:,}" + self.buffers_text()),
            ("MACs", f"{_count(a.macs)}: convolutions and matmuls, bias excluded"),
            ("Elementwise", f"{_count(a.elementwise)}: adds and multiplies (residuals, gates), "
                            "not in the MACs"),
            ("Receptive field", self.rf_text()),
            ("Min input", self.min_input.describe() if self.min_input else
             "n/a (the input is not a feature map)"),
            (f"Memory (batch {mem['batch']})",
             f"input {format_bytes(mem['input_bytes'])}, activations "
             f"{format_bytes(mem['activation_bytes'])}, params "
             f"{format_bytes(mem['param_bytes'])}, buffers {format_bytes(mem['buffer_bytes'])} "
             "(float32)"),
        ]
        return lines

    def buffers_text(self) -> str:
        """What the buffers are: BatchNorm's statistics, or the ops that hold them (a Swin's
        relative-position index)."""
        words = list(dict.fromkeys(_BUFFER_WORDS.get(n.op, f"`{n.op}` buffers")
                                   for n in self.analysis.nodes if n.buffers))
        return f" ({'; '.join(words)})" if words else ""

    def rf_text(self) -> str:
        out = self.analysis.by_id[self.graph.outputs[0]]
        largest = self.analysis.largest_local_field()
        if largest is None:
            return "n/a (the input is not a feature map)" if out.rf is None else "global"
        detail = (f"{format_rf(largest.rf_local)} at stride {format_rf(largest.jump)} "
                  f"(`{largest.id}`)")
        if largest.rf_min != largest.rf_local:
            detail += f", {format_rf(largest.rf_min)} along the shortest path"
        text = f"global at the output; before that, {detail}" if out.rf is GLOBAL else detail
        gated = self.gated()
        if gated:
            text += (f"; attention gates make every field global from `{gated[0].id}` on "
                     "(the figures marked * leave them out)")
        return text

    def gated(self) -> list[NodeStats]:
        """Nodes that see the whole input only through an attention gate."""
        return [n for n in self.analysis.nodes if n.rf is GLOBAL and isinstance(n.rf_local, tuple)]

    def header(self) -> str:
        ins = ", ".join(f"{i.name} {format_shape(i.shape)}" for i in self.graph.inputs)
        outs = ", ".join(format_shape(self.graph.node(o).shape) for o in self.graph.outputs)
        return f"{self.name}: {ins} -> {outs}"

    def table_cells(self, depth: int | None = None) -> list[tuple[Row, list[str]]]:
        depth = self.depth if depth is None else depth
        cells = []
        for prefix, row in visible_rows(self.rows(), depth):
            jump = format_rf(row.jump) if row.jump is not None else "-"
            rf = format_rf(row.rf)
            if row.rf is GLOBAL and isinstance(row.rf_local, tuple):
                rf = format_rf(row.rf_local) + "*"
            cells.append((row, [prefix + row.label, row.op, format_shape(row.shape),
                                format_count(row.params), format_count(row.macs), rf, jump]))
        return cells

    def render_text(self, depth: int | None = None) -> str:
        cells = self.table_cells(depth)
        widths = [max(len(COLUMNS[i]), *(len(c[i]) for _, c in cells)) for i in range(len(COLUMNS))]

        def line(values):
            parts = [v.rjust(w) if h in NUMERIC else v.ljust(w)
                     for h, v, w in zip(COLUMNS, values, widths)]
            return "  ".join(parts).rstrip()

        rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
        out = []
        if self.doc:
            out += [escape_controls(self.doc), ""]  # spec text: never raw controls
        out += [self.header(), rule, line(COLUMNS), rule]
        out += [line(values) for _, values in cells]
        out.append(rule)
        totals = self.totals_lines()
        key_width = max(len(k) for k, _ in totals) + 1
        out += [f"{(k + ':').ljust(key_width)} {v}" for k, v in totals]
        out.append(rule)
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.render_text()

    def __repr__(self) -> str:
        return (f"<Summary {self.name}: {self.params:,} params, {self.macs:,} MACs, "
                f"{len(self.nodes)} nodes>")

    def render_rich(self, console, depth: int | None = None) -> None:
        """The same table on a terminal, with rich (imported only here)."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        if self.doc:
            console.print(Text(escape_controls(self.doc), style="italic"))
            console.print()
        table = Table(title=self.header(), title_justify="left", box=box.SIMPLE_HEAD,
                      header_style="bold")
        for column in COLUMNS:
            table.add_column(column, justify="right" if column in NUMERIC else "left",
                             no_wrap=column in ("Layer", "Output shape"))
        for row, values in self.table_cells(depth):
            style = "bold" if row.is_block else None
            shown = [Text(v, style="dim") if v == "-" else Text(v) for v in values]
            table.add_row(*shown, style=style)
        console.print(table)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for key, value in self.totals_lines():
            grid.add_row(key, value)
        console.print(grid)

    # data
    def to_dict(self) -> dict:
        a = self.analysis
        largest = a.largest_local_field()
        mi = a.min_input
        blocks = []
        for prefix, row in visible_rows(self.rows(), None):
            if row.is_block:
                blocks.append({"name": row.id, "depth": row.depth, "kind": row.op,
                               "output": row.output, "shape": _shape_json(row.shape),
                               "params": row.params, "macs": row.macs,
                               "elementwise": row.elementwise, "rf": _rf_json(row.rf),
                               "jump": list(row.jump) if row.jump else None})
        return {
            "format": JSON_FORMAT,
            "name": self.name,
            "doc": self.doc,
            "spec": self.spec,
            "inputs": [{"name": i.name, "shape": list(i.shape)} for i in self.graph.inputs],
            "outputs": [{"name": o, "shape": _shape_json(self.graph.node(o).shape)}
                        for o in self.graph.outputs],
            "input_shape": list(self.input_shape),
            "output_shape": _shape_json(self.output_shape),
            "params": a.params,
            "buffers": a.buffers,
            "macs": a.macs,
            "elementwise": a.elementwise,
            "activations": a.activations,
            "memory": self.memory(),
            "rf": {"output": _rf_json(self.rf),
                   "largest": None if largest is None else {
                       "node": largest.id, "rf": list(largest.rf_local),
                       "jump": list(largest.jump), "rf_min": _rf_json(largest.rf_min),
                       "every_path": _rf_json(largest.rf)}},
            "min_input": None if mi is None else {
                "input": mi.input, "shape": list(mi.shape), "any_size": mi.any_size,
                "height": _axis_json(mi.height), "width": _axis_json(mi.width),
                "resized": mi.resized, "text": mi.describe()},
            "nodes": [_node_json(n) for n in a.nodes],
            "blocks": blocks,
        }

    def to_json(self) -> str:
        """One key per line, and one line per node and per block (diffable, greppable)."""
        lines = []
        for key, value in self.to_dict().items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                items = ",\n".join(f"  {json.dumps(item)}" for item in value)
                lines.append(f" {json.dumps(key)}: [\n{items}\n ]")
            else:
                lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
        return "{\n" + ",\n".join(lines) + "\n}"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "op", "scope", "shape", "params", "buffers", "macs",
                         "elementwise", "activations", "rf_h", "rf_w", "jump_h", "jump_w",
                         "rf_local_h", "rf_local_w", "rf_min_h", "rf_min_w"])
        for n in self.analysis.nodes:
            writer.writerow([n.id, n.op, ".".join(n.scope), format_shape(n.shape), n.params,
                             n.buffers, n.macs, n.elementwise, n.activations,
                             *_rf_cells(n.rf), *(n.jump or ("", "")), *_rf_cells(n.rf_local),
                             *_rf_cells(n.rf_min)])
        return buffer.getvalue()

    def to_markdown(self, depth: int | None = None) -> str:
        out = []
        if self.doc:
            out += [escape_controls(self.doc), ""]  # spec text: never raw controls
        out += [f"**{self.header()}**", ""]
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "|".join("---:" if c in NUMERIC else "---" for c in COLUMNS) + "|")
        for row, values in self.table_cells(depth):
            name = "&nbsp;&nbsp;" * (row.depth - 1) + row.label
            if row.is_block:
                name = f"**{name}**"
            cells = [name, values[1], f"`{values[2]}`", *values[3:]]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out += [f"- **{k}**: {v}" for k, v in self.totals_lines()]
        return "\n".join(out) + "\n"


def _count(count: int) -> str:
    """`25,557,032 (25.6 M)`: exact, then as people quote it."""
    return f"{count:,} ({human(count)})" if count >= 1000 else str(count)


def _rf_cells(rf) -> tuple:
    if rf is GLOBAL:
        return ("global", "global")
    return tuple(rf) if rf is not None else ("", "")


def _axis_json(axis) -> dict:
    return {"min": axis.min, "step": axis.step, "only_steps": axis.only_steps,
            "model": list(axis.model), "declared": axis.declared}


def _node_json(n: NodeStats) -> dict:
    return {"name": n.id, "op": n.op, "scope": ".".join(n.scope), "module": n.module,
            "inputs": list(n.inputs), "shape": _shape_json(n.shape), "params": n.params,
            "buffers": n.buffers, "macs": n.macs, "elementwise": n.elementwise,
            "activations": n.activations, "rf": _rf_json(n.rf),
            "jump": list(n.jump) if n.jump else None,
            "rf_start": list(n.rf_start) if n.rf_start else None,
            "rf_local": _rf_json(n.rf_local), "rf_min": _rf_json(n.rf_min)}
