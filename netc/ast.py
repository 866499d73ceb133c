"""The syntax tree: what the user wrote, nothing resolved.

Every node is a frozen dataclass carrying the `Span` of its text. `netc.ast_builder` turns
Lark's parse tree into these nodes; this module does not import Lark, so that a parse read
back from the cache (`netc.parse_cache`) never loads it.
"""
from __future__ import annotations

from dataclasses import dataclass

from netc.source import Span


class Node:
    """What every node shares: value equality, hashing and a readable repr, written once here
    instead of generated per class, because generating them took a third of `netc check`'s
    start-up (about 1 ms of `exec` per method and class)."""

    __slots__ = ()

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self):
        return hash((self.__class__, *self.__dict__.values()))

    def __repr__(self):
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{self.__class__.__name__}({fields})"


# A node is a frozen dataclass (fields, `dataclasses.replace`) with `Node`'s methods.
node = dataclass(frozen=True, eq=False, repr=False)


# ---- expressions

@node
class Expr(Node):
    span: Span


@node
class Number(Expr):
    value: int | float


@node
class String(Expr):
    value: str


@node
class Constant(Expr):
    """`true`, `false` or `none`."""
    value: bool | None


@node
class Ref(Expr):
    name: str


@node
class InputRef(Expr):
    """`in`: the tensor a block is applied to."""


@node
class ListExpr(Expr):
    items: tuple[Expr, ...]


@node
class Kwarg(Node):
    name: str
    value: Expr
    span: Span


@node
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]


@node
class Index(Expr):
    obj: Expr
    index: Expr


@node
class Attr(Expr):
    obj: Expr
    name: str


@node
class Named(Expr):
    """`label: stage`; the label is a plain name or a string with `{...}` parts."""
    label: str | String
    label_span: Span
    inner: Expr


@node
class BinOp(Expr):
    op: str  # + - * / // %  **
    left: Expr
    right: Expr


@node
class Compare(Expr):
    operands: tuple[Expr, ...]
    ops: tuple[str, ...]


@node
class BoolOp(Expr):
    op: str  # and / or
    left: Expr
    right: Expr


@node
class Not(Expr):
    operand: Expr


@node
class Neg(Expr):
    operand: Expr


@node
class Pipe(Expr):
    """`left >> right`: feed a tensor to a stage, or compose two stages."""
    left: Expr
    right: Expr


@node
class Range(Expr):
    """`lo..hi`, both ends included, as in the papers' `1..n`."""
    lo: Expr
    hi: Expr


@node
class IfExpr(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


# ---- statements

@node
class Stmt(Node):
    span: Span


@node
class Assign(Stmt):
    name: str
    value: Expr


@node
class Unpack(Stmt):
    names: tuple[str, ...]
    value: Expr


@node
class InputDecl(Stmt):
    name: str
    shape: Expr


@node
class Out(Stmt):
    value: Expr


@node
class For(Stmt):
    var: str
    iterable: Expr
    body: tuple[Stmt, ...]


@node
class If(Stmt):
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...]


@node
class Assert(Stmt):
    cond: Expr
    message: Expr | None


# ---- top level

@node
class Param(Node):
    name: str
    default: Expr | None
    span: Span


@node
class BlockDef(Node):
    """`block Name(...) { ... }`; with kind 'net', `net Name(...) { ... }`; with kind 'def',
    `def name(...) { ... }`, a pure function of values (no layers), called like a builtin."""
    kind: str
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    doc: str = ""


@node
class NetAlias(Node):
    """`net resnet50 = ResNet(Bottleneck, [3, 4, 6, 3])`: a net with new defaults."""
    name: str
    target: str
    target_span: Span
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    span: Span
    doc: str = ""


@node
class Import(Node):
    path: str
    span: Span


@node
class Defaults(Node):
    """`defaults conv(bias = false)`: new argument defaults for ops written in this file."""
    op: str
    kwargs: tuple[Kwarg, ...]
    span: Span


@node
class Module(Node):
    path: str
    doc: str
    imports: tuple[Import, ...]
    defaults: tuple[Defaults, ...]
    blocks: tuple[BlockDef, ...]
    nets: tuple[BlockDef | NetAlias, ...]
