"""Diagnostics: what every stage reports, and how it is rendered.

Stages *collect* `Diagnostic` values and never print (detection is kept apart from
reporting); `render_text` and `render_json` turn them into compiler-style output.
Only `netc.source` is imported here, so any stage can depend on this module.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass

from netc.source import SourceMap, Span, escape_controls


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


# Stable codes: E1xx syntax, E2xx names and structure, E3xx arguments and shapes, W warnings.
# A code never changes meaning once shipped; the slug is what people search for.
CATALOGUE: dict[str, tuple[str, str]] = {
    "E101": ("unexpected-token", "a token the grammar does not allow here; says what was expected"),
    "E102": ("unexpected-character", "a character that starts no token (`$`, `@`, odd Unicode)"),
    "E103": ("unexpected-end", "the file ends in the middle of a statement"),
    "E104": ("unclosed-bracket", "a `(`, `[` or `{` never closed; points at the opening one"),
    "E105": ("bad-string", "a string not closed on its line"),
    "E201": ("undefined-name", "an unknown tensor, block, op, parameter or net, with did-you-mean"),
    "E202": ("not-callable", "a call of something that is not an op, a block or a builtin"),
    "E203": ("duplicate-name", "two layers with one state_dict name, or two definitions of a name"),
    "E204": ("unknown-override", "`-D` or a keyword argument naming no parameter or input of the net"),
    "E205": ("import-not-found", "an import (or the spec) that is missing, unreadable or not allowed"),
    "E206": ("circular-import", "files that import each other, or a net defined through itself"),
    "E207": ("no-net", "a spec file with no `net` to build"),
    "E208": ("missing-output", "a block or net without `out`, or with two"),
    "E209": ("invalid-name", "a label that cannot be a submodule name"),
    "E210": ("bad-input-declaration", "an `input` shape that is not [C, H, W] or [F] of positive ints"),
    "E211": ("limit-exceeded", "a repeat, nesting, size or parameter count beyond its limit"),
    "E212": ("assertion-failed", "a spec's own `assert` failed"),
    "E301": ("channel-mismatch", "an add / multiply of different channel counts, or a declared "
                                 "in-channel count that disagrees"),
    "E302": ("spatial-mismatch", "an add / multiply of maps of different heights or widths"),
    "E303": ("size-collapses", "a conv makes a spatial size zero or less; shows the formula"),
    "E304": ("rank-mismatch", "a feature-map layer after `flatten`, or operands of different rank"),
    "E305": ("wrong-argument-count", "too many positional arguments, or a required one missing"),
    "E306": ("unknown-keyword", "a keyword argument the op or block does not have, with did-you-mean"),
    "E307": ("wrong-argument-type", "an argument of the wrong kind (a number for a boolean, ...)"),
    "E308": ("argument-out-of-range", "a number outside its range (zero stride, negative channels)"),
    "E309": ("groups-do-not-divide", "`groups` not dividing the channels, or an uneven split"),
    "E310": ("type-error", "an operation on values of the wrong kind (tensor + number, ...)"),
    "E311": ("concat-mismatch", "concatenated tensors whose other dimensions differ"),
    "E312": ("not-a-stage", "something that is not a layer after `>>`"),
    "E313": ("pool-does-not-fit", "a pooling window larger than its (padded) input"),
    "E314": ("division-error", "a division by zero in a spec expression"),
    "W201": ("unused-tensor", "a named tensor computed but never used (a forgotten edge?)"),
    "W202": ("unused-block", "a block defined in the spec but never applied"),
    "W301": ("linear-on-map", "a `linear` on a feature map acts on its last axis only"),
}
CODES: dict[str, str] = {code: slug for code, (slug, _) in CATALOGUE.items()}


@dataclass(frozen=True)
class Label:
    """A secondary span with a word on what it is (e.g. where an operand came from)."""

    span: Span
    text: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    severity: Severity = Severity.ERROR
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    hint: str | None = None

    @property
    def slug(self) -> str:
        return CODES.get(self.code, "unknown")

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0)
        return (self.span.file, self.span.line, self.span.col)

    def to_json(self) -> dict:
        span = self.span
        return {
            "code": self.code,
            "slug": self.slug,
            "severity": self.severity.value,
            "file": span.file if span else None,
            "line": span.line if span else None,
            "column": span.col if span else None,
            "end_line": span.end_line if span else None,
            "end_column": span.end_col if span else None,
            "message": self.message,
            "labels": [
                {"file": l.span.file, "line": l.span.line, "column": l.span.col, "text": l.text}
                for l in self.labels
            ],
            "notes": list(self.notes),
            "hint": self.hint,
        }


class Diagnostics(list):
    """The list a compilation collects into; a thin list with helpers for the passes."""

    def error(self, code: str, message: str, span: Span | None, **extra) -> Diagnostic:
        diagnostic = Diagnostic(code, message, span, Severity.ERROR, **extra)
        self.append(diagnostic)
        return diagnostic

    def warning(self, code: str, message: str, span: Span | None, **extra) -> Diagnostic:
        diagnostic = Diagnostic(code, message, span, Severity.WARNING, **extra)
        self.append(diagnostic)
        return diagnostic

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self)


class NetcError(Exception):
    """Raised by the Python API when a spec has errors; `str()` is the rendered text."""

    def __init__(self, diagnostics: list[Diagnostic], sources: SourceMap | None = None):
        self.diagnostics = list(diagnostics)
        self.sources = sources or SourceMap()
        super().__init__(render_text(self.diagnostics, self.sources))


class WeightsMismatch(Exception):
    """Weights that do not fit the built module; `str()` names the missing, unexpected and
    mis-shaped keys. Like a spec error (the CLI exits 1): the spec and the weights disagree."""


# ---- rendering

_STYLES = {"error": "\033[1;31m", "warning": "\033[1;33m", "bold": "\033[1m",
           "blue": "\033[1;34m", "reset": "\033[0m"}


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{_STYLES[style]}{text}{_STYLES['reset']}" if colour else text


def _snippet(span: Span, sources: SourceMap, colour: bool, label: str = "") -> list[str]:
    line = escape_controls(sources.line_text(span))
    if not line:  # nothing to quote (an override from the command line, an empty line)
        return []
    gutter = len(str(span.line))
    width = span.end_col - span.col if span.end_line == span.line else len(line) - span.col + 1
    width = max(1, min(width, max(1, len(line) - span.col + 1)))
    marker = " " * (span.col - 1) + "^" * width + (f" {label}" if label else "")
    bar = _paint("|", "blue", colour)
    return [
        f" {' ' * (2 - gutter) if gutter < 2 else ''}{_paint(str(span.line), 'blue', colour)} {bar} {line}",
        f" {' ' * max(gutter, 2)} {bar} {_paint(marker, 'error', colour)}",
    ]


def render_one(d: Diagnostic, sources: SourceMap, colour: bool = False) -> str:
    """One diagnostic as text; spec text in it (names, strings, paths) has its control
    characters escaped, so that nothing a spec holds can drive the terminal."""
    safe = dataclasses.replace(
        d, message=escape_controls(d.message), notes=tuple(escape_controls(n) for n in d.notes),
        hint=escape_controls(d.hint) if d.hint else d.hint,
        labels=tuple(Label(l.span, escape_controls(l.text)) for l in d.labels))
    return _render_one(safe, sources, colour)


# A text report shows at most this many warnings of one code (20,000 unused blocks are one
# problem); JSON keeps every one.
MAX_WARNINGS_SHOWN = 100


def _render_one(d: Diagnostic, sources: SourceMap, colour: bool = False) -> str:
    where = f"{escape_controls(str(d.span))}: " if d.span else "netc: "
    head = _paint(f"{d.severity.value}[{d.code}]", d.severity.value, colour)
    lines = [f"{_paint(where, 'bold', colour)}{head}: {d.message}"]
    if d.span:
        lines += _snippet(d.span, sources, colour)
    for label in d.labels:
        lines.append(f"  note: {label.text} at {escape_controls(str(label.span))}")
        lines += _snippet(label.span, sources, colour)
    lines += [f"  note: {note}" for note in d.notes]
    if d.hint:
        lines.append(f"  hint: {d.hint}")
    return "\n".join(lines)


def render_text(diagnostics: list[Diagnostic], sources: SourceMap, colour: bool = False) -> str:
    ordered = sorted(diagnostics, key=Diagnostic.sort_key)
    shown: dict[str, int] = {}
    out = []
    for d in ordered:
        if not d.is_error:
            shown[d.code] = shown.get(d.code, 0) + 1
            if shown[d.code] > MAX_WARNINGS_SHOWN:
                continue
        out.append(render_one(d, sources, colour))
    for code, count in shown.items():
        if count > MAX_WARNINGS_SHOWN:
            out.append(f"netc: {count - MAX_WARNINGS_SHOWN:,} more warning[{code}] "
                       f"({CODES.get(code, 'unknown')}) not shown; --format json lists all")
    return "\n".join(out)


def render_json(diagnostics: list[Diagnostic]) -> str:
    ordered = sorted(diagnostics, key=Diagnostic.sort_key)
    return json.dumps([d.to_json() for d in ordered], indent=2)
