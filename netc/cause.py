"""Cause analysis: point a diagnostic at the mistake, not where it surfaces.

A shape conflict (an add of 54x54 and 56x56 maps, a concat of different channels) shows up
where two tensors meet, but the mistake is usually earlier: a padding that does not keep the
size, a projection without its stride, a PyTorch `dim=1`. `explain_conflict` walks both
operands' derivations in the graph back to the node where they part, finds the layer (and the
argument) that makes the difference, and returns the diagnostic's primary span there, with the
meeting place as a secondary label and a hint computed from the numbers ("padding 2 keeps
54x54"). When no single cause stands out, the diagnostic stays where the conflict surfaced.

`explain_argument` does the same for a bad op argument: the expression that computed it, with
its values (`in.c // 128 = 64 // 128 = 0`), and the `-D` that set it. `explain_small_input`
(run by the compiler after a size error) finds the smallest input size that works.

Pure Python on the graph IR and the source text; nothing here imports torch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from netc import ast
from netc.diagnostics import Label
from netc.shapes import ShapeError, format_shape, pair
from netc.source import SourceMap, Span

SPATIAL_OPS = {"conv", "maxpool", "avgpool"}


@dataclass
class Finding:
    span: Span | None
    hint: str | None
    labels: tuple[Label, ...] = ()
    label: str = ""
    notes: tuple[str, ...] = ()
    cause: dict | None = None


# ---- small helpers

PURE_CALLS = {"len", "min", "max", "int", "abs", "float"}


def is_pure(expr) -> bool:
    """An expression that creates no layer when evaluated (numbers, names, shape queries,
    arithmetic, builtins): only these are evaluated again to show their values."""
    import dataclasses

    if isinstance(expr, (ast.Pipe, ast.Named)):
        return False
    if isinstance(expr, ast.Call):
        if not (isinstance(expr.func, ast.Ref) and expr.func.name in PURE_CALLS):
            return False
    if not dataclasses.is_dataclass(expr):
        return True
    for item in dataclasses.fields(expr):
        value = getattr(expr, item.name)
        for part in (value if isinstance(value, (tuple, list)) else (value,)):
            inner = part.value if isinstance(part, ast.Kwarg) else part
            if isinstance(inner, ast.Expr) and not is_pure(inner):
                return False
    return True


def describe_call(name: str, values: dict) -> str:
    """`Bottleneck(planes=64, stride=2, ...)`: a block with its arguments, for the context."""
    parts = [f"{k}={_short(v)}" for k, v in values.items() if k != "in" and not k.startswith("<")]
    text = f"{name}({', '.join(parts)})"
    return text if len(text) <= 100 else text[:96] + "...)"


def _short(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str)):
        return repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, list):
        inner = ", ".join(_short(v) for v in value[:6])
        return f"[{inner}{', ...' if len(value) > 6 else ''}]"
    defn = getattr(value, "defn", None)
    if defn is not None:
        return defn.name
    block = getattr(value, "block", None)
    if block is not None and getattr(block, "defn", None) is not None:
        return block.defn.name
    return "<layer>"


def span_text(sources: SourceMap, span: Span) -> str:
    source = sources.files.get(span.file)
    if source is None:
        return ""
    lines = source.lines[span.line - 1:span.end_line]
    if not lines:
        return ""
    if len(lines) == 1:
        return lines[0][span.col - 1:span.end_col - 1]
    return "\n".join([lines[0][span.col - 1:], *lines[1:-1], lines[-1][:span.end_col - 1]])


def find_in(sources: SourceMap, span: Span, pattern: str) -> Span | None:
    """The sub-span of `span` matching `pattern` (a regex), e.g. `dim\\s*=\\s*1`."""
    text = span_text(sources, span)
    match = re.search(pattern, text)
    if not match:
        return None
    before = text[:match.start()]
    line = span.line + before.count("\n")
    col = (span.col + len(before)) if "\n" not in before else len(before.rsplit("\n", 1)[1]) + 1
    width = match.end() - match.start()
    return Span(span.file, line, col, line, col + width)


def call_args_text(sources: SourceMap, span: Span) -> list[str]:
    """A call's positional and keyword arguments as written (`["planes * 4", "1"]`)."""
    text = span_text(sources, span)
    start = text.find("(")
    if start < 0:
        return []
    depth, current, parts = 0, "", []
    for ch in text[start + 1:]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def _short_id(node_id: str) -> str:
    """`conv3` for `layer1.0.conv3`; an index keeps its parent (`feas.0`)."""
    parts = node_id.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


# ---- walking derivations

def _ancestors(graph, node_id: str) -> set[str]:
    import networkx as nx

    return nx.ancestors(graph.g, node_id) | {node_id}


def _fork(graph, a: str, b: str) -> str | None:
    """The latest node both operands derive from (where their derivations part)."""
    common = _ancestors(graph, a) & _ancestors(graph, b)
    if not common:
        return None
    return max(common, key=lambda n: graph.node(n).order)


def _branch(graph, operand: str, fork: str | None) -> list:
    """The nodes between the fork and the operand, in creation order."""
    nodes = _ancestors(graph, operand)
    if fork is not None:
        nodes -= _ancestors(graph, fork)
    return sorted((graph.node(n) for n in nodes), key=lambda n: n.order)


def _window(node) -> tuple[int, int, int, int]:
    """(kernel, stride, padding, dilation) of a conv or pool, height axis."""
    from netc.ops import conv_padding

    args = node.args
    k = pair(args["kernel_size"])[0]
    if node.op == "conv":
        s, d = pair(args["stride"])[0], pair(args["dilation"])[0]
        p = conv_padding(args)[0] if args["padding"] != "same" else d * (k - 1) // 2
    else:
        s = pair(args["stride"] if args["stride"] is not None else args["kernel_size"])[0]
        p, d = pair(args["padding"])[0], pair(args.get("dilation", 1))[0]
    return k, s, p, d


def _spatial_changes(graph, branch: list, axis: int) -> list[tuple]:
    """(node, in_size, out_size) for every node of the branch that changes the size."""
    changes = []
    for node in branch:
        if node.op == "input" or not node.inputs or node.shape is None:
            continue
        before = graph.node(node.inputs[0]).shape
        if not (isinstance(before, tuple) and isinstance(node.shape, tuple)
                and len(before) == 3 and len(node.shape) == 3):
            continue
        if before[axis] != node.shape[axis]:
            changes.append((node, before[axis], node.shape[axis]))
    return changes


def _keeps_pattern(node, n: int, out: int) -> bool:
    """A strided layer that downsamples as intended (out = n / stride, rounded)."""
    if node.op not in SPATIAL_OPS:
        return True  # adaptive pools, gap: deliberate
    k, s, p, d = _window(node)
    return s > 1 and out in (-(-n // s), n // s)


def _padding_fix(node, n: int, out: int) -> tuple[str, str]:
    """(label, hint) for a layer whose padding or kernel does not keep the size."""
    k, s, p, d = _window(node)
    what = f"{k}x{k} {node.op}" + (f" with dilation {d}" if d != 1 else "")
    name = f"`{node.id}`"
    target = -(-n // s)
    if (d * (k - 1)) % 2:  # an even (effective) kernel cannot keep the size at any padding
        return (f"kernel {k} with padding {p}: {n} -> {out}",
                f"{name} is a {what} with padding {p}: it makes {n}x{n} {out}x{out}; an even "
                f"kernel cannot keep the size: use kernel {k - 1} or {k + 1} "
                f"(padding {d * (k - 2) // 2} or {d * k // 2})")
    keep = d * (k - 1) // 2
    verb = "keeps" if s == 1 else "gives"
    return (f"padding {p} makes {n} -> {out}",
            f"{name} is a {what}" + (f" at stride {s}" if s > 1 else "") +
            f" with padding {p}: it makes {n}x{n} {out}x{out}; padding {keep} {verb} "
            f"{target}x{target}")


# ---- the entry point for shape errors

def explain_conflict(graph, op, args: dict, inputs: list[str], error: ShapeError, span: Span,
                     labels: tuple, sources: SourceMap, operand_exprs=None,
                     block_out: Callable | None = None, evaluate: Callable | None = None,
                     assigned: dict | None = None, unknown=None) -> Finding:
    """Where the shape error `error` of a new `op` node comes from (see the module doc)."""
    default = Finding(span, error.hint, labels)
    try:
        found = _explain(graph, op, args, inputs, error, span, labels, sources,
                         operand_exprs or [], block_out)
        if found is not None:
            found.labels = _merged(found.labels)
        if found is None and error.code == "E309" and op.name == "conv":
            found = _explain_groups(graph, args, inputs, span, labels, sources, evaluate,
                                    assigned or {}, unknown)
    except Exception:  # analysis is a bonus: it must never hide (or replace) the error itself
        return default
    return found or default


def _explain(graph, op, args, inputs, error, span, labels, sources, operand_exprs, block_out):
    shapes = [graph.node(i).shape for i in inputs]
    if error.code == "E311" and op.name == "cat":
        return _explain_cat(graph, args, inputs, shapes, span, labels, sources)
    if error.code in ("E301", "E302") and op.name in ("add", "mul") and len(inputs) >= 2:
        pair_ = _conflicting_pair(shapes, error.code)
        if pair_ is None:
            return None
        if error.code == "E302":
            return _explain_spatial(graph, inputs, shapes, pair_, span, labels, sources, "add")
        if len(inputs) > 2 and op.name == "add":  # `sum(features)` where `cat` was meant
            counts = sorted({s[0] for s in shapes})
            return Finding(span, f"a sum needs equal channels, these have {counts}: to stack "
                                 f"the maps along the channels, use `cat` (a concatenation)",
                           labels, f"{len(inputs)} maps of {counts} channels",
                           cause={"kind": "sum-of-different-channels"})
        return _explain_channels(graph, op, inputs, shapes, pair_, span, labels, sources,
                                 operand_exprs, block_out)
    return None


def _merged(labels: tuple) -> tuple:
    """Labels on one span as one label (two operands produced by the same line of a block,
    in two of its instances, would otherwise underline it twice)."""
    texts: dict = {}
    for label in labels:
        texts.setdefault(label.span, []).append(label.text)
    return tuple(Label(span, "; ".join(words)) for span, words in texts.items())


def _conflicting_pair(shapes, code: str):
    axis_ok = (lambda a, b: a[0] == b[0] or 1 in (a[0], b[0])) if code == "E301" else \
        (lambda a, b: all(x == y or 1 in (x, y) for x, y in zip(a[1:], b[1:])))
    # the odd one out: the operand that disagrees with most of the others
    n = len(shapes)
    disagreements = [sum(not axis_ok(shapes[i], shapes[j]) for j in range(n) if j != i)
                     for i in range(n)]
    odd = max(range(n), key=lambda i: disagreements[i])
    other = next((j for j in range(n) if j != odd and not axis_ok(shapes[odd], shapes[j])), None)
    if other is None:
        return None
    if n == 2:
        return 0, 1, False
    return odd, other, True


def _explain_spatial(graph, inputs, shapes, pair_, span, labels, sources, verb):
    i, j, odd_known = pair_
    a, b = inputs[i], inputs[j]
    axis = 1 if shapes[i][1] != shapes[j][1] else 2
    fork = _fork(graph, a, b)
    branches = {a: _spatial_changes(graph, _branch(graph, a, fork), axis),
                b: _spatial_changes(graph, _branch(graph, b, fork), axis)}
    meeting = Label(span, f"the {verb} meets {format_shape(shapes[i])} and "
                                    f"{format_shape(shapes[j])} here")
    more, less = (a, b) if shapes[i][axis] < shapes[j][axis] else (b, a)
    strided_more = [c for c in branches[more] if c[0].op in SPATIAL_OPS and _window(c[0])[1] > 1]
    strided_less = [c for c in branches[less] if c[0].op in SPATIAL_OPS and _window(c[0])[1] > 1]
    # 0. the odd operand of a concat/sum of several strides where the others do not
    if odd_known and more == a and strided_more and not strided_less:
        node, n, out = strided_more[-1]
        return Finding(_argument_span(sources, node, "stride") or node.span,
                       f"`{node.id}` strides by {_window(node)[1]} ({n}x{n} -> {out}x{out}) in "
                       f"this operand only; stride 1 keeps {n}x{n} like the others",
                       (meeting, *labels), f"stride {_window(node)[1]}: {n} -> {out}",
                       cause={"kind": "stride", "node": node.id})
    # 1. a layer that changes the size without meaning to (padding, kernel)
    order = [a, b] if not odd_known else [a]
    for operand in order + [x for x in (a, b) if x not in order]:
        for node, n, out in branches[operand]:
            if not _keeps_pattern(node, n, out):
                label, hint = _padding_fix(node, n, out)
                where = _argument_span(sources, node, "padding") or node.span
                return Finding(where, hint, (meeting, *labels), label,
                               cause={"kind": "padding", "node": node.id, "size": [n, out]})
    ratio = max(1, round(graph.node(less).shape[axis] / max(1, graph.node(more).shape[axis])))
    less_layers = [c for c in _branch(graph, less, fork) if c.op in SPATIAL_OPS]
    # 3. a pool in one operand only (moved into the wrong block)
    pools = [c for c in strided_more if c[0].op in ("maxpool", "avgpool")]
    if pools and not less_layers and not any(c[0].op == "conv" for c in strided_more):
        node, n, out = pools[-1]
        return Finding(node.span, f"`{node.op}` in `{node.id}` makes {n}x{n} {out}x{out} in one "
                                  f"operand only: move it after the {verb}, or pool every operand",
                       (meeting, *labels), f"{node.op}: {n} -> {out}",
                       cause={"kind": "pool", "node": node.id})
    # 4. one operand strides more often than the other (counted along one path: parallel
    # paths that all stride, as in a selective kernel, downsample once)
    chain_more = _strided_chain(graph, more, fork)
    if len(chain_more) > len(_strided_chain(graph, less, fork)) >= 1:
        # a strided 1x1 conv (which skips pixels) is the rarer choice, so the likelier mistake
        node = next((c for c in chain_more if c.op == "conv" and _window(c)[0] == 1),
                    chain_more[-1])
        n, out = graph.node(node.inputs[0]).shape[axis], node.shape[axis]
        return Finding(_argument_span(sources, node, "stride") or node.span,
                       f"this branch is downsampled {len(chain_more)} times, the other "
                       f"{len(_strided_chain(graph, less, fork))} times: drop the stride of "
                       f"`{_short_id(node.id)}` "
                       f"(`{node.id}`, stride {_window(node)[1]})",
                       (meeting, *labels), f"one stride too many: {n} -> {out}",
                       cause={"kind": "stride", "node": node.id})
    reference = strided_more[0][0] if strided_more else None
    ref_text = (f" at `{reference.id}` (stride {_window(reference)[1]})" if reference else "")
    # 5. the less downsampled operand has a layer that should stride as well
    if less_layers:
        pick = next((c for c in less_layers if c.op == "conv" and _window(c)[0] > 1),
                    next((c for c in less_layers if c.op == "conv"), less_layers[0]))
        size = graph.node(pick.inputs[0]).shape[axis]
        extra = (Label(reference.span, f"downsampled by {_window(reference)[1]} here"),) \
            if reference else ()
        return Finding(_argument_span(sources, pick, "stride") or pick.span,
                       f"`{pick.id}` keeps {size}x{size} (stride {_window(pick)[1]}) but the other "
                       f"operand is downsampled by {ratio}{ref_text}: give "
                       f"`{_short_id(pick.id)}` stride {ratio * _window(pick)[1]}",
                       (meeting, *extra, *labels), f"stride {_window(pick)[1]} keeps {size}",
                       cause={"kind": "stride", "node": pick.id, "missing": ratio})
    # 6. a concatenation of a map with its own transform: the transform must keep the size
    if reference is not None and verb == "concatenation" and reference.op == "conv":
        n, out = graph.node(reference.inputs[0]).shape[axis], reference.shape[axis]
        return Finding(_argument_span(sources, reference, "stride") or reference.span,
                       f"`{reference.id}` strides by {_window(reference)[1]} ({n}x{n} -> "
                       f"{out}x{out}), but it is concatenated with maps of the size before: "
                       f"drop its stride (stride 1 keeps {n}x{n})",
                       (meeting, *labels), f"stride {_window(reference)[1]}: {n} -> {out}",
                       cause={"kind": "stride", "node": reference.id})
    # 7. an identity shortcut against a strided branch: a projection is missing
    if reference is not None:
        c = graph.node(more).shape[0]
        return Finding(span, f"the other operand is downsampled by {ratio}{ref_text}; the "
                             f"shortcut needs the same stride, e.g. a projection "
                             f"`in >> conv({c}, 1, {ratio}) >> bn`",
                       (Label(reference.span, f"downsampled by {ratio} here"), *labels),
                       cause={"kind": "missing-projection", "node": reference.id})
    return None


def _strided_chain(graph, operand: str, fork: str | None) -> list:
    """The strided convs and pools on the path of first inputs from the fork to an operand."""
    stop = _ancestors(graph, fork) if fork else set()
    node, found = graph.node(operand), []
    while node.id not in stop:
        if node.op in SPATIAL_OPS and _window(node)[1] > 1:
            found.append(node)
        if not node.inputs:
            break
        node = graph.node(node.inputs[0])
    return found[::-1]


def _argument_span(sources: SourceMap, node, name: str) -> Span | None:
    """The argument `name = ...` inside a layer's call, when written by keyword."""
    return find_in(sources, node.span, rf"\b{name}\s*=\s*[^,)]+")


def _setter(graph, operand: str, fork: str | None):
    """The node that gave an operand its channel count (None: the fork's own channels)."""
    node = graph.node(operand)
    channels = node.shape[0]
    stop = _ancestors(graph, fork) if fork else set()
    while node.id not in stop:
        if node.op in ("conv", "linear", "cat", "split", "getitem", "reshape", "input"):
            return node
        if not node.inputs:
            return node
        previous = graph.node(node.inputs[0])
        if previous.shape is None or previous.shape[0] != channels:
            return node
        node = previous
    return None


def _channels_text(sources, node) -> str:
    """`planes * 4 = 256`: how a conv's output channels were written, with the value."""
    c = node.shape[0]
    if node.op in ("conv", "linear"):
        written = call_args_text(sources, node.span)
        first = written[0] if written else ""
        if first and "=" not in first and first.strip() != str(c):
            return f"{first} = {c}"
    return str(c)


def _explain_channels(graph, op, inputs, shapes, pair_, span, labels, sources, operand_exprs,
                      block_out):
    i, j, _ = pair_
    a, b = inputs[i], inputs[j]
    fork = _fork(graph, a, b)
    ca, cb = shapes[i][0], shapes[j][0]
    meeting = Label(span, f"{format_shape(shapes[i])} and {format_shape(shapes[j])} "
                                    f"meet here")
    # a gate ([C, 1, 1]) that does not have the channels of the map it gates
    if op.name == "mul":
        gates = [k for k in (i, j) if len(shapes[k]) == 3 and shapes[k][1:] == (1, 1)]
        if len(gates) == 1:
            g = gates[0]
            m = j if g == i else i
            setter = _setter(graph, inputs[g], fork)
            if setter is not None and setter.op in ("conv", "linear"):
                want = shapes[m][0]
                return Finding(setter.span, f"the gate must have the {want} channels of the map "
                                            f"it multiplies, but `{_short_id(setter.id)}` "
                                            f"(`{setter.id}`) gives {_channels_text(sources, setter)}: "
                                            f"make it give {want} (e.g. `in.c`)",
                               (meeting, *labels), f"gives {shapes[g][0]} channels, not {want}",
                               cause={"kind": "gate-channels", "node": setter.id, "want": want})
    sa, sb = _setter(graph, a, fork), _setter(graph, b, fork)
    if sa is not None and sb is not None:
        la, lb = len(_branch(graph, a, fork)), len(_branch(graph, b, fork))
        main, other = (sa, sb) if la >= lb else (sb, sa)
        mc, oc = main.shape[0], other.shape[0]
        return Finding(main.span, f"the other operand has {oc} channels (from `{other.id}`: "
                                  f"{_channels_text(sources, other)}) but `{_short_id(main.id)}` "
                                  f"gives {_channels_text(sources, main)}: make "
                                  f"`{_short_id(main.id)}` give {oc}, or the other {mc}",
                       (meeting, Label(other.span, f"{oc} channels here"), *labels),
                       f"gives {mc} channels",
                       cause={"kind": "channels", "node": main.id, "other": other.id})
    if sa is None and sb is None:
        return None
    setter, ident, ident_index = (sa, b, j) if sa is not None else (sb, a, i)
    c_ident, c_set = graph.node(ident).shape[0], setter.shape[0]
    # the identity came out of a block application (`in >> Shortcut(...)`): its condition
    expr = operand_exprs[ident_index][0] if ident_index < len(operand_exprs) else None
    out = block_out(expr) if (expr is not None and block_out and not isinstance(
        expr, (ast.Ref, ast.InputRef))) else None
    if out and out[0] is not None and c_set in out[2]:  # asked for c_set, returned c_ident
        stmt, name, _ = out
        return Finding(stmt.span, f"a projection is needed where channels change "
                                  f"({c_ident} -> {c_set}): `{name}` returned its input "
                                  f"unchanged; its condition must hold when `in.c` differs",
                       (meeting, Label(setter.span, f"{c_set} channels here"), *labels),
                       f"`{name}` returns its {c_ident}-channel input unchanged",
                       cause={"kind": "missing-projection", "block": name})
    if isinstance(expr, (ast.Ref, ast.InputRef)):  # `y + in`: the classic missing projection
        return Finding(span, f"`{_short_id(setter.id)}` gives {_channels_text(sources, setter)} "
                             f"channels but the shortcut has {c_ident}: give the shortcut a "
                             f"projection (`in >> conv({c_set}, 1) >> bn`), or make "
                             f"`{_short_id(setter.id)}` give {c_ident}",
                       (Label(setter.span, f"{c_set} channels here"), *labels),
                       cause={"kind": "missing-projection", "node": setter.id})
    return Finding(setter.span, f"the shortcut has {c_ident} channels but "
                                f"`{_short_id(setter.id)}` gives {_channels_text(sources, setter)}: "
                                f"make it give {c_ident}, or project the shortcut "
                                f"(a projection: `in >> conv({c_set}, 1) >> bn`)",
                   (meeting, *labels), f"gives {c_set} channels, the shortcut has {c_ident}",
                   cause={"kind": "channels", "node": setter.id})


def _explain_cat(graph, args, inputs, shapes, span, labels, sources):
    dim = args["dim"]
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        return None
    axis = dim if dim >= 0 else dim + rank
    differ = [ax for ax in range(rank) if ax != axis and len({s[ax] for s in shapes}) > 1]
    if dim != 0 and 0 in differ:  # PyTorch's batched dim 1 carried over
        where = find_in(sources, span, r"\bdim\s*=\s*-?\d+") or span
        return Finding(where, f"netc dims are per sample (no batch): PyTorch's `dim=1` (the "
                              f"channels) is netc's dim 0, the default: drop `dim = {dim}`",
                       (*labels,), f"dim {dim} is the height here, not the channels",
                       cause={"kind": "cat-dim", "dim": dim})
    if differ and all(ax > 0 for ax in differ) and rank == 3:  # heights or widths differ
        pair_ = _conflicting_pair([(0, *s[1:]) for s in shapes], "E302")
        if pair_ is not None:
            return _explain_spatial(graph, inputs, shapes, pair_, span, labels, sources,
                                    "concatenation")
    return None


def _explain_groups(graph, args, inputs, span, labels, sources, evaluate, assigned, unknown):
    c = graph.node(inputs[0]).shape[0]
    groups = args["groups"]
    if c % groups == 0:
        return None
    producer = _setter(graph, inputs[0], None)
    if producer is None or producer.op != "conv":
        return None
    written = _channels_text(sources, producer)
    first = (call_args_text(sources, producer.span) or [""])[0]
    where, extra = span, (Label(producer.span, f"{c} channels here"),)
    if first in assigned and evaluate is not None:  # `conv(width, 1)`: where width is computed
        stmt = assigned[first]
        shown = with_values(_chosen(stmt.value, evaluate, unknown), evaluate, unknown)
        if shown:
            written = f"{first} = {shown}"
            where, extra = stmt.span, (Label(span, f"groups = {groups} here"),
                                       Label(producer.span, f"{c} channels here"))
    return Finding(where, f"`{producer.id}` gives {written} channels, which groups = {groups} "
                          f"does not divide: the width must be a multiple of groups",
                   (*extra, *labels), label=f"{c} channels" if where is not span else "",
                   cause={"kind": "groups", "node": producer.id})


# ---- bad argument values

ARGUMENT_RE = re.compile(r"argument `(\w+)`")


def explain_argument(error, op, call, evaluate: Callable, assigned: dict, origins: dict,
                     unknown) -> Finding | None:
    """A bad argument of an op (`call`: the call as written and the offset of the op's
    arguments in it): the expression that computed it with its values, the assignment it came
    from, the `-D` that set it, or PyTorch's argument order behind it."""
    match = ARGUMENT_RE.search(error.message)
    if not match or call is None:
        return None
    name = match.group(1)
    expr_call, offset = call
    expr = _argument_expr(op, name, expr_call, offset)
    if error.code == "E307" and op.name == "linear" and name == "bias" \
            and len(expr_call.args) >= offset + 2:
        values = [evaluate(e) for e in expr_call.args[offset:offset + 2]]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if op.name == "linear":
                fix = f"linear({values[1]})"
                text = (f"PyTorch's `nn.Linear(in, out)` order: netc's `linear` takes "
                        f"out_features first and infers in_features: write `{fix}`")
            else:
                fix = f"conv({values[1]}, ...)"
                text = ("PyTorch's `nn.Conv2d(in, out, k)` order: netc's `conv` takes "
                        f"out_channels first and infers in-channels: write `{fix}`")
            return Finding(error.span, text, label="in_features is inferred",
                           cause={"kind": "pytorch-order", "op": op.name})
    if expr is None:
        return None
    # a value from the command line or the Python API
    if isinstance(expr, ast.Ref) and expr.name in origins:
        origin = origins[expr.name]
        value = evaluate(expr)
        if isinstance(origin, Span):
            return Finding(origin, f"`{expr.name}` = {_short(value)} is set on the command line "
                                   f"(`-D {expr.name}=...`); {_range_words(error.message)}",
                           (Label(error.span, f"`{expr.name}` is used here"),),
                           cause={"kind": "override", "name": expr.name})
        return Finding(error.span, f"`{expr.name}` = {_short(value)} comes from the call's "
                                   f"arguments (the Python API); {_range_words(error.message)}",
                       cause={"kind": "override", "name": expr.name})
    shown = with_values(expr, evaluate, unknown)
    target = expr
    where = None
    if isinstance(expr, ast.Ref) and expr.name in assigned:
        stmt = assigned[expr.name]
        where = stmt.span
        shown = f"{expr.name} = " + with_values(_chosen(stmt.value, evaluate, unknown),
                                                evaluate, unknown)
        target = stmt.value
    if shown is None or "=" not in shown:
        return None
    advice = _range_words(error.message)
    final = evaluate(target)
    if isinstance(final, int) and final <= 0 and "//" in shown:
        inner = shown.split(" = ")[1] if where else shown.split(" = ")[0]
        advice += (f"; the division rounds down to {final}: `max(1, {inner})` keeps at least one "
                   f"channel, or divide by less")
    return Finding(where or expr.span, f"`{name}` is {shown}: {advice}",
                   (Label(error.span, f"as `{name}` of this `{op.name}`"),) if where else (),
                   label=f"{shown.rsplit('=', 1)[-1].strip()} here",
                   cause={"kind": "computed-argument", "argument": name, "expression": shown})


def _range_words(message: str) -> str:
    m = re.search(r"must be ([^,]+), got (.+)$", message)
    if m:
        return f"it must be {m.group(1)}"
    m = re.search(r"beyond the limit of ([\d,]+)", message)
    return f"beyond the limit of {m.group(1)}: a value that grows at every use?" if m else \
        "the value is out of range"


def _argument_expr(op, name: str, call: ast.Call, offset: int):
    for kw in call.kwargs:
        if kw.name == name:
            return kw.value
    positional = [p.name for p in op.params if not p.keyword_only]
    if name in positional:
        index = positional.index(name) + offset
        if 0 <= index < len(call.args):
            return call.args[index]
    return None


def _chosen(expr, evaluate, unknown):
    """The branch of an `if ... then ... else` that was taken (the others played no part)."""
    while isinstance(expr, ast.IfExpr):
        cond = evaluate(expr.cond)
        if cond is unknown or not isinstance(cond, bool):
            return expr
        expr = expr.then if cond else expr.orelse
    return expr


def with_values(expr, evaluate, unknown) -> str | None:
    """`in.c // 16 = 10 // 16 = 0`: the expression as written, with its leaves' values."""
    text = _written(expr)
    valued = _written(expr, lambda leaf: evaluate(leaf))
    result = evaluate(expr)
    if text is None or result is unknown:
        return None
    parts = [text]
    if valued and valued != text:
        parts.append(valued)
    if _short(result) != parts[-1]:
        parts.append(_short(result))
    return " = ".join(parts)


_PRECEDENCE = {"**": 4, "*": 3, "/": 3, "//": 3, "%": 3, "+": 2, "-": 2}


def _written(expr, value_of=None) -> str | None:
    if isinstance(expr, ast.Number):
        return _short(expr.value)
    if isinstance(expr, (ast.Ref, ast.Attr, ast.Index, ast.InputRef)):
        if value_of is not None:
            value = value_of(expr)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return _short(value)
        if isinstance(expr, ast.Ref):
            return expr.name
        if isinstance(expr, ast.InputRef):
            return "in"
        if isinstance(expr, ast.Attr):
            inner = _written(expr.obj)
            return f"{inner}.{expr.name}" if inner else None
        inner, index = _written(expr.obj), _written(expr.index)
        return f"{inner}[{index}]" if inner and index else None
    if isinstance(expr, ast.BinOp):
        left, right = _written(expr.left, value_of), _written(expr.right, value_of)
        if left is None or right is None:
            return None
        if isinstance(expr.left, ast.BinOp) and _PRECEDENCE.get(expr.left.op, 9) < \
                _PRECEDENCE.get(expr.op, 0):
            left = f"({left})"
        if isinstance(expr.right, ast.BinOp) and _PRECEDENCE.get(expr.right.op, 9) <= \
                _PRECEDENCE.get(expr.op, 0):
            right = f"({right})"
        return f"{left} {expr.op} {right}"
    if isinstance(expr, ast.Neg):
        inner = _written(expr.operand, value_of)
        return f"-{inner}" if inner else None
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Ref):
        args = [_written(a, value_of) for a in expr.args]
        if any(a is None for a in args):
            return None
        return f"{expr.func.name}({', '.join(args)})"
    return None


# ---- inputs too small for the net

def explain_small_input(diagnostics: list, compile_at: Callable, input_spec, origin) -> list:
    """After a size error (E303/E313), the smallest square input (at the declared channels)
    for which the net has no size error, found by compiling again; the first size error is
    then pointed at the input when the failing layer's window is small (the map shrank on the
    way: the input is too small), and keeps its place otherwise (a big window is the mistake,
    e.g. a fixed pool where an adaptive one was meant)."""
    import dataclasses

    index = next((k for k, d in enumerate(diagnostics) if d.is_error), None)
    if index is None or diagnostics[index].code not in ("E303", "E313") or input_spec is None:
        return diagnostics
    first = diagnostics[index]
    c, h = input_spec.shape[0], input_spec.shape[1]
    if len(input_spec.shape) != 3:
        return diagnostics

    def works(size: int) -> bool:
        return not any(d.is_error and d.code in ("E303", "E313") for d in compile_at((c, size, size)))

    hi = max(h, 1) * 2
    while hi <= 4096 and not works(hi):
        hi *= 2
    if hi > 4096:
        return diagnostics
    lo = max(h, 1)  # fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid
    window = re.search(r"window (\d+)", first.message)
    kernel = re.search(r"\b(\d+) - 1\)", " ".join(first.notes))
    big = int(window.group(1)) if window else int(kernel.group(1)) + 1 if kernel else 0
    need = f"the input must be at least {hi}x{hi} (it is {input_spec.shape[1]}x{input_spec.shape[2]})"
    other = (first.hint or "").replace("use a larger input, or a smaller", "use a smaller")
    hint = need + ((f"; or {other}" if other else "") if big > 3 else "")
    if big > 3:
        return [*diagnostics[:index], dataclasses.replace(first, hint=hint,
                                                          cause={"kind": "small-input",
                                                                 "min": hi}),
                *diagnostics[index + 1:]]
    label = f"{input_spec.shape[1]}x{input_spec.shape[2]} is too small"
    span = input_spec.span
    labels = (Label(first.span, "the map runs out here"), *first.labels) if first.span else \
        first.labels
    if origin == "--input":
        label = f"{label} (set by --input on the command line)"
    moved = dataclasses.replace(first, span=span, label=label, labels=labels, hint=hint,
                                cause={"kind": "small-input", "min": hi})
    return [*diagnostics[:index], moved, *diagnostics[index + 1:]]
