"""infer / validate: op arguments checked against each op's schema, and shapes inferred.

`bind_op_args` and `infer_node` are called by the elaborator as it creates each node
(shape queries need types during elaboration); `infer_graph` re-derives every shape of a
finished graph from its inputs alone, which checks that the graph is self-consistent
(tests run it after every compilation, like torch.fx's `Graph.lint`).
"""
from __future__ import annotations

from netc.diagnostics import Diagnostics
from netc.ir import Graph
from netc.ops import AUTO, MAX_INT_ARG, OpSpec, check_value, ints_in, kind_words, suggest
from netc.shapes import Shape, ShapeError

MAX_CHANNELS = 1 << 20


def _normalise(value):
    """Integral floats count as ints (`planes * base_width / 64` is a width); tuples as lists."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1 << 53:
        return int(value)
    if isinstance(value, tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def bind_op_args(op: OpSpec, args: tuple, kwargs: dict, defaults: dict, span, error_type) -> dict:
    """Every argument of `op` by name: given, else the file's `defaults`, else the op's own.

    Raises `error_type(code, message, span, hint=...)` on a wrong count, name or value.
    """
    names = [p.name for p in op.params]
    positional = [p.name for p in op.params if not p.keyword_only]
    if len(args) > len(positional):
        raise error_type("E305", f"`{op.name}` takes at most {len(positional)} positional "
                                 f"arguments ({', '.join(positional) or 'none'}), got {len(args)}",
                         span)
    bound = dict(zip(positional, args))
    for key, value in kwargs.items():
        if key not in names:
            close = suggest(key, names)
            raise error_type("E306", f"`{op.name}` has no argument `{key}`", span,
                             hint=f"did you mean `{close}`?" if close else
                             f"its arguments: {', '.join(names) or 'none'}")
        if key in bound:
            raise error_type("E306", f"`{key}` is given twice (by position and by name)", span)
        bound[key] = value
    result = {}
    for param in op.params:
        if param.name in bound:
            value = bound[param.name]
        elif param.name in defaults:
            value = defaults[param.name]
        elif not param.required:
            value = param.default
        else:
            raise error_type("E305", f"`{op.name}` needs `{param.name}`", span,
                             hint=f"e.g. `{op.name}({', '.join(p.name for p in op.params if p.required)})`")
        value = _normalise(value)
        if param.kind in ("float", "pos_float", "prob") and _is_plain_int(value):
            value = float(value)  # a float argument stays a float (TorchScript checks types)
        big = [v for v in ints_in(value) if abs(v) > MAX_INT_ARG]
        if big:
            raise error_type("E308", f"`{op.name}` argument `{param.name}` is {big[0]:,}, beyond "
                                     f"the largest size netc accepts ({MAX_INT_ARG:,})", span)
        if not check_value(param.kind, value) and not (value == AUTO and param.default == AUTO):
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            wants_number = param.kind not in ("bool",)
            code = "E308" if is_number and wants_number else "E307"
            raise error_type(code, f"`{op.name}` argument `{param.name}` must be "
                                   f"{kind_words(param.kind)}, got {_shown(value)}", span)
        result[param.name] = value
    for param in op.params:
        if param.kind in ("pos",) and isinstance(result[param.name], int) \
                and result[param.name] > MAX_CHANNELS:
            raise error_type("E211", f"`{op.name}` argument `{param.name}` = "
                                     f"{result[param.name]} is beyond the limit of {MAX_CHANNELS}",
                             span)
    return result


def infer_node(op: OpSpec, args: dict, in_shapes: list) -> Shape:
    """The op's output shape for these inputs; raises ShapeError with the reason."""
    return op.infer(args, list(in_shapes))


def operand_shapes(op: OpSpec, shapes: list, learnable: list[bool]) -> list:
    """Input shapes as the op's rule sees them: a learnable tensor of lower rank in an add
    or multiply lines up from the right, as PyTorch broadcasts it (a [D] scale against
    [L, D] tokens); batched tensors must agree in rank."""
    if op.name not in ("add", "mul") or len({len(s) for s in shapes}) == 1:
        return shapes
    rank = max(len(s) for s in shapes)
    return [(1,) * (rank - len(s)) + tuple(s) if is_param else s
            for s, is_param in zip(shapes, learnable)]


def infer_graph(graph: Graph, diags: Diagnostics | None = None) -> dict[str, Shape]:
    """Every node's shape recomputed in topological order from the inputs' shapes."""
    from netc.ops import OPS

    shapes: dict[str, Shape] = {}
    for node in graph:
        if node.op == "input":
            shapes[node.id] = node.shape
            continue
        try:
            op = OPS[node.op]
            ins = operand_shapes(op, [shapes[i] for i in node.inputs],
                                 [graph.node(i).op == "param" for i in node.inputs])
            shapes[node.id] = infer_node(op, node.args, ins)
        except ShapeError as error:
            if diags is None:
                raise
            diags.error(error.code, error.message, node.span, hint=error.hint, notes=error.notes)
    return shapes


def _shown(value) -> str:
    """An argument's value for a message: data as written, anything else by its kind."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, list) and len(value) <= 8:
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "a tensor" if hasattr(value, "shape") and hasattr(value, "node") else "a layer"


def _is_plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 53
