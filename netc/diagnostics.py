"""Diagnostics: what every stage reports, and how it is rendered.

Stages *collect* `Diagnostic` values and never print (detection is kept apart from
reporting); `render_text` and `render_json` turn them into compiler-style output.
Only `netc.source` is imported here, so any stage can depend on this module.
"""
from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass

from netc.source import SourceFile, SourceMap, Span, escape_controls


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
class Frame:
    """One level of "in instantiation of": the instance a diagnostic sits in, the block with
    its arguments, and where it was applied."""

    instance: str  # `layer1.0` (empty for an unnamed application)
    block: str  # `Bottleneck(planes=64, stride=1)`
    span: Span | None  # the application site

    def describe(self) -> str:
        where = f"`{self.instance}`, " if self.instance else ""
        site = f", applied at {self.span}" if self.span else ""
        return f"in {where}an instance of `{self.block}`{site}"


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    severity: Severity = Severity.ERROR
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    hint: str | None = None
    # added for cause analysis and context (issue 10); all optional, JSON adds, never renames
    label: str = ""  # the primary span's own words (`padding 1 shrinks 54 to 52`)
    context: tuple[Frame, ...] = ()  # innermost first
    cause: dict | None = None  # what cause analysis found (kind, node, argument, values)
    count: int = 1  # how many instances (loop iterations, block uses) met this mistake

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

    def __str__(self) -> str:
        """The rendered text, quoting the files from disk (a SourceMap is better when at hand)."""
        return render_one(self, _DiskSources())

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
                {"file": l.span.file, "line": l.span.line, "column": l.span.col,
                 "end_line": l.span.end_line, "end_column": l.span.end_col, "text": l.text,
                 "primary": False}
                for l in self.labels
            ],
            "notes": list(self.notes),
            "hint": self.hint,
            "label": self.label,
            "context": [{"instance": f.instance, "block": f.block,
                         "file": f.span.file if f.span else None,
                         "line": f.span.line if f.span else None,
                         "column": f.span.col if f.span else None} for f in self.context],
            "cause": self.cause,
            "count": self.count,
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


# ---- rendering (rustc's layout: one snippet per file with every label of the diagnostic,
# `^` under the primary span and `-` under secondary ones, `= note:` / `= help:` lines)

_STYLES = {"error": "\033[1;31m", "warning": "\033[1;33m", "bold": "\033[1m",
           "blue": "\033[1;34m", "reset": "\033[0m"}

LONG_SPAN = 10  # a multi-line span longer than this shows its first and last lines


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{_STYLES[style]}{text}{_STYLES['reset']}" if colour else text


class _DiskSources(SourceMap):
    """Sources read from disk on demand: what `str(diagnostic)` quotes without a SourceMap."""

    def file_lines(self, path: str) -> list[str] | None:
        if path not in self.files:
            try:
                with open(path, encoding="utf-8") as handle:
                    self.add(SourceFile(path, handle.read()))
            except (OSError, UnicodeDecodeError, ValueError):
                return None
        return self.files[path].lines


def _file_lines(sources: SourceMap, path: str) -> list[str] | None:
    if isinstance(sources, _DiskSources):
        return sources.file_lines(path)
    source = sources.files.get(path)
    return source.lines if source else None


@dataclass
class _Mark:
    span: Span
    text: str
    primary: bool


def _line_range(mark: _Mark, lines: list[str]) -> list[int]:
    first, last = mark.span.line, max(mark.span.line, mark.span.end_line)
    last = min(last, len(lines))
    if last - first + 1 > LONG_SPAN:
        return [*range(first, first + 4), *range(last - 2, last + 1)]
    return list(range(first, last + 1))


def _columns(mark: _Mark, number: int, line: str) -> tuple[int, int]:
    """The 0-based [start, end) a mark underlines on line `number`."""
    span = mark.span
    multi = span.end_line > span.line
    start = span.col - 1 if number == span.line else len(line) - len(line.lstrip())
    if number == span.end_line and (multi or span.end_col > span.col):
        end = span.end_col - 1
    elif number == span.line and not multi:
        end = span.col  # an empty span: one caret
    else:
        end = len(line)
    start = max(0, min(start, len(line)))
    end = max(start + 1, min(end, max(len(line), start + 1)))
    return start, end


def _snippet(marks: list[_Mark], lines: list[str], colour: bool, style: str,
             gutter: int) -> list[str]:
    shown: set[int] = set()
    for mark in marks:
        shown.update(n for n in _line_range(mark, lines) if 1 <= n <= len(lines))
    bar = _paint("|", "blue", colour)
    out = []
    previous = None
    if shown:  # a single unlabelled line between two labelled ones is shown, not elided
        shown |= {n + 1 for n in shown if n + 2 in shown and n + 1 <= len(lines)}
    for number in sorted(shown):
        if previous is not None and number - previous > 1:
            out.append(_paint("...", "blue", colour))
        previous = number
        text = escape_controls(lines[number - 1])
        out.append(f"{_paint(str(number).rjust(gutter), 'blue', colour)} {bar} {text}")
        here = [m for m in marks if m.span.line <= number <= max(m.span.line, m.span.end_line)]
        if not here:
            continue
        row = [" "] * (max(_columns(m, number, text)[1] for m in here))
        for mark in sorted(here, key=lambda m: m.primary):  # primary carets win overlaps
            a, b = _columns(mark, number, text)
            for i in range(a, b):
                row[i] = "^" if mark.primary else "-"
        # words go on the last line of their span; the rightmost on the marker row itself
        worded = sorted((m for m in here if m.text and number == min(
            max(m.span.line, m.span.end_line), len(lines))), key=lambda m: _columns(m, number, text)[0])
        markers = "".join(row)
        painted = re.sub(r"\^+|-+", lambda m: _paint(m.group(), style if m.group()[0] == "^"
                                                   else "blue", True), markers) \
            if colour else markers
        tail = f" {escape_controls(worded[-1].text)}" if worded else ""
        out.append(f"{' ' * gutter} {bar} {painted}{tail}".rstrip())
        for mark in reversed(worded[:-1]):
            col = _columns(mark, number, text)[0]
            out.append(f"{' ' * gutter} {bar} {' ' * col}{escape_controls(mark.text)}".rstrip())
    return out


def render_one(d: Diagnostic, sources: SourceMap, colour: bool = False) -> str:
    """One diagnostic as text; spec text in it (names, strings, paths) has its control
    characters escaped, so that nothing a spec holds can drive the terminal."""
    where = f"{escape_controls(str(d.span))}: " if d.span else "netc: "
    if d.span and d.span.file.startswith("-"):  # a value from the command line (`-D key`)
        where = f"{escape_controls(d.span.file)}: "
    style = d.severity.value
    head = _paint(f"{d.severity.value}[{d.code}]", style, colour)
    out = [f"{_paint(where, 'bold', colour)}{head}: {escape_controls(d.message)}"]
    marks = ([_Mark(d.span, d.label, True)] if d.span else []) + \
        [_Mark(l.span, l.text, False) for l in d.labels]
    by_file: dict[str, list[_Mark]] = {}
    for mark in marks:
        by_file.setdefault(mark.span.file, []).append(mark)
    unquoted = []
    snippets = []
    for index, (path, group) in enumerate(by_file.items()):
        lines = _file_lines(sources, path)
        if not lines or not any(1 <= m.span.line <= len(lines) and lines[m.span.line - 1].strip()
                                for m in group):
            unquoted += [m for m in group if not m.primary]
            continue
        snippets.append((index, path, group, lines))
    numbers = [n for _, _, group, lines in snippets for m in group for n in _line_range(m, lines)]
    gutter = max([len(str(n)) for n in numbers] or [1])
    bar = _paint("|", "blue", colour)
    for index, path, group, lines in snippets:
        if index > 0 or not d.span:
            first = min(group, key=lambda m: (m.span.line, m.span.col))
            out.append(f"{' ' * gutter}{_paint('::: ', 'blue', colour)}"
                       f"{escape_controls(str(first.span))}")
        out.append(f"{' ' * gutter} {bar}")
        out += _snippet(group, lines, colour, style, gutter)
    pad = " " * gutter
    eq = _paint("=", "blue", colour)
    for mark in unquoted:
        out.append(f"{pad} {eq} note: {escape_controls(mark.text)} ({escape_controls(str(mark.span))})")
    for frame in d.context[:MAX_FRAMES]:
        out.append(f"{pad} {eq} note: {escape_controls(frame.describe())}")
    if len(d.context) > MAX_FRAMES:
        out.append(f"{pad} {eq} note: ... and {len(d.context) - MAX_FRAMES} enclosing instances")
    if d.count > 1:
        out.append(f"{pad} {eq} note: the same mistake is met {d.count} times (every loop "
                   f"iteration or block use); reported once")
    out += [f"{pad} {eq} note: {escape_controls(note)}" for note in d.notes]
    if d.hint:
        out.append(f"{pad} {eq} {_paint('help', 'bold', colour)}: {escape_controls(d.hint)}")
    return "\n".join(out)


MAX_FRAMES = 4

# A text report shows at most this many warnings of one code (20,000 unused blocks are one
# problem); JSON keeps every one.
MAX_WARNINGS_SHOWN = 100


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


def render_totals(errors: int, warnings: int, colour: bool = False) -> str:
    """The closing line: `2 errors, 1 warning emitted`."""
    parts = []
    if errors:
        parts.append(_paint(f"{errors} error{'s' if errors != 1 else ''}", "error", colour))
    if warnings:
        parts.append(_paint(f"{warnings} warning{'s' if warnings != 1 else ''}", "warning", colour))
    return ", ".join(parts) + " emitted" if parts else ""


def render_json(diagnostics: list[Diagnostic]) -> str:
    ordered = sorted(diagnostics, key=Diagnostic.sort_key)
    return json.dumps([d.to_json() for d in ordered], indent=2)
