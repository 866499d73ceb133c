"""The syntax tree: what the user wrote, nothing resolved.

Every node is a frozen dataclass carrying the `Span` of its text. `ToAst` turns Lark's
parse tree into these nodes and does nothing else: checks belong to later stages
(an exception raised inside a Lark Transformer comes out wrapped in `VisitError`).
"""
from __future__ import annotations

from dataclasses import dataclass

from lark import Token, Transformer, v_args

from netc.source import Span


# ---- expressions

@dataclass(frozen=True)
class Expr:
    span: Span


@dataclass(frozen=True)
class Number(Expr):
    value: int | float


@dataclass(frozen=True)
class String(Expr):
    value: str


@dataclass(frozen=True)
class Constant(Expr):
    """`true`, `false` or `none`."""
    value: bool | None


@dataclass(frozen=True)
class Ref(Expr):
    name: str


@dataclass(frozen=True)
class InputRef(Expr):
    """`in`: the tensor a block is applied to."""


@dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Kwarg:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]


@dataclass(frozen=True)
class Index(Expr):
    obj: Expr
    index: Expr


@dataclass(frozen=True)
class Attr(Expr):
    obj: Expr
    name: str


@dataclass(frozen=True)
class Named(Expr):
    """`label: stage`; the label is a plain name or a string with `{...}` parts."""
    label: str | String
    label_span: Span
    inner: Expr


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * / // %  **
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    operands: tuple[Expr, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # and / or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Pipe(Expr):
    """`left >> right`: feed a tensor to a stage, or compose two stages."""
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Range(Expr):
    """`lo..hi`, both ends included, as in the papers' `1..n`."""
    lo: Expr
    hi: Expr


@dataclass(frozen=True)
class IfExpr(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


# ---- statements

@dataclass(frozen=True)
class Stmt:
    span: Span


@dataclass(frozen=True)
class Assign(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class Unpack(Stmt):
    names: tuple[str, ...]
    value: Expr


@dataclass(frozen=True)
class InputDecl(Stmt):
    name: str
    shape: Expr


@dataclass(frozen=True)
class Out(Stmt):
    value: Expr


@dataclass(frozen=True)
class For(Stmt):
    var: str
    iterable: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class If(Stmt):
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...]


@dataclass(frozen=True)
class Assert(Stmt):
    cond: Expr
    message: Expr | None


# ---- top level

@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class BlockDef:
    """`block Name(...) { ... }`; with kind 'net', `net Name(...) { ... }`; with kind 'def',
    `def name(...) { ... }`, a pure function of values (no layers), called like a builtin."""
    kind: str
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    doc: str = ""


@dataclass(frozen=True)
class NetAlias:
    """`net resnet50 = ResNet(Bottleneck, [3, 4, 6, 3])`: a net with new defaults."""
    name: str
    target: str
    target_span: Span
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    span: Span
    doc: str = ""


@dataclass(frozen=True)
class Import:
    path: str
    span: Span


@dataclass(frozen=True)
class Defaults:
    """`defaults conv(bias = false)`: new argument defaults for ops written in this file."""
    op: str
    kwargs: tuple[Kwarg, ...]
    span: Span


@dataclass(frozen=True)
class Module:
    path: str
    doc: str
    imports: tuple[Import, ...]
    defaults: tuple[Defaults, ...]
    blocks: tuple[BlockDef, ...]
    nets: tuple[BlockDef | NetAlias, ...]


# ---- parse tree -> AST

def _split_args(items) -> tuple[tuple[Expr, ...], tuple[Kwarg, ...]]:
    args = tuple(i for i in items if isinstance(i, Expr))
    kwargs = tuple(i for i in items if isinstance(i, Kwarg))
    return args, kwargs


@v_args(meta=True)
class ToAst(Transformer):
    """One method per grammar rule; `meta` carries the positions (propagate_positions)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _span(self, meta) -> Span:
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, token: Token) -> Span:
        return Span(self.path, token.line, token.column, token.end_line, token.end_column)

    # top level
    def start(self, meta, items):
        return list(items)

    def import_stmt(self, meta, items):
        return Import(items[0][1:-1], self._span(meta))

    def call_default(self, meta, items):
        return (items[0], tuple(i for i in items[1:] if i is not None), self._span(meta))

    def defaults_stmt(self, meta, items):
        return [Defaults(name, kwargs, span) for name, kwargs, span in items]

    def params(self, meta, items):
        return tuple(items)

    def param(self, meta, items):
        return Param(str(items[0]), items[1] if len(items) > 1 else None, self._span(meta))

    def body(self, meta, items):
        return tuple(items)

    def block_def(self, meta, items):
        name, params, body = items
        return BlockDef("block", str(name), params or (), body, self._span(meta))

    def func_def(self, meta, items):
        name, params, body = items
        return BlockDef("def", str(name), params or (), body, self._span(meta))

    def net_def(self, meta, items):
        name, params, body = items
        return BlockDef("net", str(name), params or (), body, self._span(meta))

    def net_alias(self, meta, items):
        name, target, args = items
        positional, kwargs = _split_args(args or ())
        return NetAlias(str(name), str(target), self._token_span(target), positional, kwargs,
                        self._span(meta))

    # statements
    def assign(self, meta, items):
        return Assign(self._span(meta), str(items[0]), items[1])

    def unpack(self, meta, items):
        return Unpack(self._span(meta), tuple(str(n) for n in items[:-1]), items[-1])

    def input_stmt(self, meta, items):
        return InputDecl(self._span(meta), str(items[0]), items[1])

    def out_stmt(self, meta, items):
        return Out(self._span(meta), items[0])

    def for_stmt(self, meta, items):
        return For(self._span(meta), str(items[0]), items[1], items[2])

    def if_stmt(self, meta, items):
        branches, orelse = [], ()
        pairs = list(items)
        while len(pairs) >= 2:
            branches.append((pairs[0], pairs[1]))
            pairs = pairs[2:]
        if pairs:
            orelse = pairs[0]
        return If(self._span(meta), tuple(branches), orelse)

    def assert_stmt(self, meta, items):
        return Assert(self._span(meta), items[0], items[1] if len(items) > 1 else None)

    # expressions
    def ifexpr(self, meta, items):
        return IfExpr(self._span(meta), *items)

    def or_(self, meta, items):
        return BoolOp(self._span(meta), "or", items[0], items[1])

    def and_(self, meta, items):
        return BoolOp(self._span(meta), "and", items[0], items[1])

    def not_(self, meta, items):
        return Not(self._span(meta), items[0])

    def compare(self, meta, items):
        return Compare(self._span(meta), tuple(items[0::2]), tuple(str(t) for t in items[1::2]))

    def comp_op(self, meta, items):
        return str(items[0])

    add_op = mul_op = comp_op

    def range_(self, meta, items):
        return Range(self._span(meta), items[0], items[1])

    def pipe(self, meta, items):
        return Pipe(self._span(meta), items[0], items[1])

    def binop(self, meta, items):
        return BinOp(self._span(meta), items[1], items[0], items[2])

    def neg(self, meta, items):
        return Neg(self._span(meta), items[0])

    def pow_(self, meta, items):
        return BinOp(self._span(meta), "**", items[0], items[1])

    def call(self, meta, items):
        func, args = items
        positional, kwargs = _split_args(args or ())
        return Call(self._span(meta), func, positional, kwargs)

    def args(self, meta, items):
        return tuple(items)

    def kwarg(self, meta, items):
        return Kwarg(str(items[0]), items[1], self._span(meta))

    def index(self, meta, items):
        return Index(self._span(meta), items[0], items[1])

    def attr(self, meta, items):
        return Attr(self._span(meta), items[0], str(items[1]))

    def named(self, meta, items):
        label, inner = items
        return Named(self._span(meta), label[0], label[1], inner)

    def label_name(self, meta, items):
        return (str(items[0]), self._token_span(items[0]))

    def label_string(self, meta, items):
        token = items[0]
        span = self._token_span(token)
        return (String(span, token[1:-1]), span)

    def number(self, meta, items):
        text = str(items[0])
        is_float = any(c in text for c in ".eE")
        return Number(self._span(meta), float(text) if is_float else int(text))

    def string(self, meta, items):
        return String(self._span(meta), str(items[0])[1:-1])

    def true(self, meta, items):
        return Constant(self._span(meta), True)

    def false(self, meta, items):
        return Constant(self._span(meta), False)

    def none(self, meta, items):
        return Constant(self._span(meta), None)

    def ref(self, meta, items):
        return Ref(self._span(meta), str(items[0]))

    def input_ref(self, meta, items):
        return InputRef(self._span(meta))

    def list_(self, meta, items):
        return ListExpr(self._span(meta), tuple(i for i in items if i is not None))
