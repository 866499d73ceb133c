"""parse: spec text -> `ast.Module`, or syntax diagnostics that say what was expected in words.

The grammar lives in `grammar/netc.lark` (the single source of truth for the syntax); it is
loaded once, with LALR and positions on every node. Lark is imported only when a file is
really parsed: an unchanged file's parse comes from `netc.parse_cache`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from pathlib import Path

from netc import ast, parse_cache
from netc.diagnostics import Diagnostics
from netc.source import SourceFile, Span

TYPE_CHECKING = False  # (importing typing for it costs 6 ms of start-up)
if TYPE_CHECKING:
    from lark import Lark, Token
    from lark.exceptions import UnexpectedInput

_OPENING = {"(": ")", "[": "]", "{": "}"}
_CLOSING = {v: k for k, v in _OPENING.items()}

# How a terminal reads in an "expected ..." message.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "TRUE": "`true`",
    "FALSE": "`false`",
    "NONE": "`none`",
    "IN": "`in`",
    "$END": "the end of the file",
}


@functools.cache
def grammar_path() -> Path:
    """The grammar file: packaged inside `netc/` in a wheel, at the repo root when editable."""
    here = Path(__file__).resolve().parent
    packaged = here / "grammar" / "netc.lark"
    return packaged if packaged.is_file() else here.parent / "grammar" / "netc.lark"


def _cache_file(grammar: str) -> str | bool:
    """Where Lark may keep the built parser tables (saves ~80 ms per run): netc's per-user
    cache directory, never a shared temp dir (the cache is a pickle). False if there is none."""
    import lark

    directory = parse_cache.cache_dir()
    if directory is None:
        return False
    digest = hashlib.sha256(grammar.encode()).hexdigest()[:16]
    return str(directory / f"grammar-{digest}-lark{lark.__version__}.cache")


@functools.cache
def lark_parser() -> Lark:
    from lark import Lark

    grammar = grammar_path().read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                cache=_cache_file(grammar), start=["start", "expr"])


# A spec is a screenful (the largest shipped one is 3 kB). The limit keeps parsing within a
# few seconds: Lark reads roughly 100-200 kB a second, so a megabyte took 25-57 s.
MAX_SOURCE_BYTES = 256 << 10
MAX_SOURCE_CHARS = MAX_SOURCE_BYTES

# Control characters (but tab, newline and carriage return), DEL and C1 controls: no spec
# needs them, and in a comment or a doc they would reach a terminal or generated code.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def parse_source(source: SourceFile, diags: Diagnostics) -> ast.Module | None:
    """The AST of one file; on a syntax error, a diagnostic and None."""
    if len(source.text) > MAX_SOURCE_CHARS:
        diags.error("E211", f"the file has {len(source.text):,} characters, beyond the limit of "
                            f"{MAX_SOURCE_CHARS:,}", Span(source.path, 1, 1, 1, 2),
                    hint="is this the right file?")
        return None
    control = _CONTROL.search(source.text)
    if control:
        line = source.text.count("\n", 0, control.start()) + 1
        col = control.start() - (source.text.rfind("\n", 0, control.start()) + 1) + 1
        diags.error("E102", f"control character U+{ord(control.group()):04X} in the source "
                            f"text", _token_span(source, line, col),
                    hint="a spec is plain text: remove it (comments and strings too)")
        return None
    cached = parse_cache.load(source)
    if cached is not None:
        module, expressions = cached
        _remember(expressions)
        return module
    module = _parse(source, diags)
    if module is not None:
        parse_cache.store(source, module, _parse_interpolations(module))
    return module


def _parse(source: SourceFile, diags: Diagnostics) -> ast.Module | None:
    from lark.exceptions import UnexpectedInput, VisitError

    from netc.ast_builder import ToAst

    try:
        tree = lark_parser().parse(source.text, start="start")
        items = _flatten(ToAst(source.path).transform(tree))
    except UnexpectedInput as error:
        _syntax_diagnostic(error, source, diags)
        return None
    except (RecursionError, VisitError) as error:
        if isinstance(error, VisitError) and not isinstance(error.orig_exc, RecursionError):
            raise
        diags.error("E211", "expressions nest too deeply to compile", Span(source.path, 1, 1, 1, 2),
                    hint="split long expressions with intermediate names")
        return None
    return _module_from_items(source, items)


# Expressions already parsed, by (text, span): those of a cached file's string labels come
# back with its module, so that elaborating it does not need Lark either. Bounded: a long
# sweep compiles many files in one process.
_EXPRESSIONS: dict[tuple[str, Span], ast.Expr] = {}
_MAX_EXPRESSIONS = 4096


def _remember(expressions: dict[tuple[str, Span], ast.Expr]) -> None:
    if len(_EXPRESSIONS) + len(expressions) > _MAX_EXPRESSIONS:
        _EXPRESSIONS.clear()
    _EXPRESSIONS.update(expressions)

_INTERPOLATION = re.compile(r"\{([^{}]*)\}")


def interpolations(string: ast.String) -> list[tuple[re.Match, Span]]:
    """Each `{...}` of a string label (`"layer{i+1}"`), with the span of the expression."""
    span = string.span
    return [(match, Span(span.file, span.line, span.col + 1 + match.start(1),
                         span.line, span.col + 1 + match.end(1)))
            for match in _INTERPOLATION.finditer(string.value)]


def _parse_interpolations(module: ast.Module) -> dict[tuple[str, Span], ast.Expr]:
    """Every string label's expressions, parsed now so that the cache can keep them (none if
    the tree is too deep to walk: they are then parsed when used)."""
    parsed = {}
    try:
        for string in _strings(module):
            for match, span in interpolations(string):
                expr = parse_expression(match.group(1), span, Diagnostics())
                if expr is not None:
                    parsed[(match.group(1), span)] = expr
    except RecursionError:
        return {}
    return parsed


def _strings(node):
    if isinstance(node, ast.String):
        yield node
    elif isinstance(node, tuple):
        for item in node:
            yield from _strings(item)
    elif dataclasses.is_dataclass(node) and not isinstance(node, Span):
        for field in dataclasses.fields(node):
            yield from _strings(getattr(node, field.name))


def parse_expression(text: str, span: Span, diags: Diagnostics) -> ast.Expr | None:
    """An expression inside a string label (`"layer{i+1}"`), positioned at `span`."""
    if (text, span) in _EXPRESSIONS:
        return _EXPRESSIONS[(text, span)]
    from lark.exceptions import UnexpectedInput, VisitError

    from netc.ast_builder import ToAst

    inner = SourceFile(span.file, text)
    try:
        tree = lark_parser().parse(text, start="expr")
        expr = _shift(ToAst(span.file).transform(tree), span.line - 1, span.col - 1)
        _remember({(text, span): expr})
        return expr
    except UnexpectedInput as error:
        diag = _syntax_diagnostic(error, inner, Diagnostics())
        diags.error(diag.code, f"cannot read `{text}`: {diag.message}", span)
        return None
    except (RecursionError, VisitError) as error:
        if isinstance(error, VisitError) and not isinstance(error.orig_exc, RecursionError):
            raise
        diags.error("E211", "expression nests too deeply", span)
        return None


def _shift(node, line_offset: int, col_offset: int):
    """Move every span of an expression parsed from a string into the file's coordinates."""
    if isinstance(node, Span):
        return node.shifted(line_offset, col_offset)
    if isinstance(node, tuple):
        return tuple(_shift(n, line_offset, col_offset) for n in node)
    if dataclasses.is_dataclass(node):
        changes = {f.name: _shift(getattr(node, f.name), line_offset, col_offset)
                   for f in dataclasses.fields(node)}
        return dataclasses.replace(node, **changes)
    return node


def _flatten(items) -> list:
    flat = []
    for item in items:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def _module_from_items(source: SourceFile, items: list) -> ast.Module:
    lines = source.text.splitlines()

    def with_doc(node):
        return dataclasses.replace(node, doc=_doc_above(lines, node.span.line))

    return ast.Module(
        path=source.path,
        doc=_file_doc(lines),
        imports=tuple(i for i in items if isinstance(i, ast.Import)),
        defaults=tuple(i for i in items if isinstance(i, ast.Defaults)),
        blocks=tuple(with_doc(i) for i in items if isinstance(i, ast.BlockDef)
                     and i.kind in ("block", "def")),
        nets=tuple(with_doc(i) for i in items
                   if isinstance(i, ast.NetAlias) or (isinstance(i, ast.BlockDef) and i.kind == "net")),
    )


def _doc_above(lines: list[str], line: int) -> str:
    """Doc comments are the `##` lines directly above a `block` or `net`."""
    doc: list[str] = []
    index = line - 2
    while index >= 0 and lines[index].lstrip().startswith("##"):
        doc.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    return "\n".join(doc)


def _file_doc(lines: list[str]) -> str:
    """The file's doc comment: its leading `##` lines."""
    doc = []
    for line in lines:
        if not line.lstrip().startswith("##"):
            break
        doc.append(line.lstrip()[2:].strip())
    return "\n".join(doc)


# ---- syntax errors

def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = lark_parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else name.lower()


def _expected_in_words(expected: set[str]) -> str:
    words = sorted({_describe_terminal(name) for name in expected})
    if not words:
        return "something else"
    if len(words) > 6:
        return ", ".join(words[:6]) + ", ..."
    return ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]


def _token_span(source: SourceFile, line: int, col: int, length: int = 1) -> Span:
    return Span(source.path, line, col, line, col + max(length, 1))


def _end_span(source: SourceFile) -> Span:
    lines = source.text.splitlines() or [""]
    return _token_span(source, len(lines), len(lines[-1]) + 1)


def _open_brackets(source: SourceFile, stop: tuple[int, int] | None = None):
    """The brackets still open before position `stop` (or the end), innermost last, each
    with its position. A plain character scan (skipping comments and strings) rather than
    the lexer, because it must work on text the lexer rejects."""
    stack: list[tuple[str, int, int]] = []
    for line_no, line in enumerate(source.text.splitlines(), start=1):
        in_string = False
        for col, char in enumerate(line, start=1):
            if stop is not None and (line_no, col) >= stop:
                return stack
            if char == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif char == "#":
                break
            elif char in _OPENING:
                stack.append((char, line_no, col))
            elif char in _CLOSING and stack and stack[-1][0] == _CLOSING[char]:
                stack.pop()
    return stack


def _unclosed_bracket(source: SourceFile, stop: tuple[int, int] | None = None):
    stack = _open_brackets(source, stop)
    return stack[-1] if stack else None


def _context_phrase(previous: Token | None) -> str:
    """What the parser wanted, said for the common places people stumble."""
    if previous is None:
        return ""
    after = str(previous)
    if after == ">>":
        return "expected a layer, a block call or a list of layers after `>>`"
    if after in ("=", "(", ",", "[") or after in ("+", "-", "*", "/", "//", "%", "**"):
        return f"expected a value after `{after}`"
    if after == ":":
        return "expected a layer, a block call or a list after the name and `:`"
    return ""


def _syntax_diagnostic(error: UnexpectedInput, source: SourceFile, diags: Diagnostics):
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(error, UnexpectedCharacters):
        char = source.text[error.pos_in_stream] if error.pos_in_stream < len(source.text) else "?"
        if char == '"':
            return diags.error("E105", "this string is never closed",
                               _token_span(source, error.line, error.column),
                               hint="a string ends with `\"` on the same line; it cannot hold "
                                    "`\\` or a newline")
        return diags.error("E102", f"unexpected character `{char}`",
                           _token_span(source, error.line, error.column),
                           hint="names are letters, digits and `_`; strings use double quotes")
    token = getattr(error, "token", None)
    at_end = isinstance(error, UnexpectedEOF) or (token is not None and token.type == "$END")
    if at_end:
        unclosed = _unclosed_bracket(source)
        if unclosed:
            bracket, line, col = unclosed
            return diags.error("E104", f"`{bracket}` is never closed", _token_span(source, line, col),
                               hint=f"add the matching `{_OPENING[bracket]}`")
        expected = _expected_in_words(getattr(error, "expected", set()) or set())
        return diags.error("E103", f"unexpected end of file; expected {expected}", _end_span(source))
    assert isinstance(error, UnexpectedToken)
    history = getattr(error, "token_history", None) or []
    previous = history[-1] if history else None
    phrase = _context_phrase(previous) or f"expected {_expected_in_words(error.expected)}"
    if str(token) in _CLOSING:
        unclosed = _unclosed_bracket(source, (token.line, token.column))
        if unclosed is None:
            phrase += f" (this `{token}` closes nothing)"
        elif unclosed[0] != _CLOSING[str(token)]:
            bracket, line, col = unclosed
            return diags.error(
                "E104", f"`{bracket}` is never closed: found `{token}` at {token.line}:{token.column} "
                        f"before its `{_OPENING[bracket]}`",
                _token_span(source, line, col), hint=f"add the matching `{_OPENING[bracket]}`")
    return diags.error("E101", f"unexpected `{token}`: {phrase}",
                       _token_span(source, token.line, token.column, len(str(token))))
