"""Lark's parse tree -> `netc.ast` nodes, one method per grammar rule, and nothing else:
checks belong to later stages (an exception raised inside a Lark Transformer comes out
wrapped in `VisitError`).
"""
from __future__ import annotations

from lark import Token, Transformer, v_args

from netc.ast import (Assert, Assign, Attr, BinOp, BlockDef, BoolOp, Call, Compare,
                      Constant, Defaults, Expr, For, If, IfExpr, Import, Index, InputDecl,
                      InputRef, Kwarg, ListExpr, Named, Neg, NetAlias, Not, Number, Out,
                      Param, Pipe, Range, Ref, String, Unpack)
from netc.source import Span


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
        return (str(items[0]), tuple(i for i in items[1:] if i is not None), self._span(meta))

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
