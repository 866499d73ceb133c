"""Source text and positions: what every diagnostic points at.

This module imports nothing from netc, so every stage (and the diagnostics renderer)
can use it without import cycles.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# C0 and C1 controls (but tab and newline), DEL, and the bidirectional overrides: what must
# never reach a terminal raw from spec text (an escape sequence can retitle or rewrite it)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """`text` safe to print: control characters shown as `\\x1b`, `\\u202e`, ..."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True, slots=True)
class Span:
    """A range of source text; lines and columns are 1-based, `end_col` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, line_offset: int, col_offset: int) -> "Span":
        """This span moved into an enclosing text (used for `{...}` inside strings)."""
        first_col = self.col + col_offset if self.line == 1 else self.col
        last_col = self.end_col + col_offset if self.end_line == 1 else self.end_col
        return Span(self.file, self.line + line_offset, first_col,
                    self.end_line + line_offset, last_col)


@dataclass(frozen=True)
class SourceFile:
    """One spec file's text, kept so that diagnostics can quote it exactly as written."""

    path: str  # as the user should read it (relative when it was given relative)
    text: str

    @functools.cached_property
    def lines(self) -> list[str]:
        """The text split once (a file with 20,000 diagnostics must not be split 20,000 times),
        at `\n` only, as the parser counts lines (`splitlines` would also split at U+2028 and
        other separators, and quote the wrong line after one)."""
        return [line.removesuffix("\r") for line in self.text.split("\n")]

    def line_text(self, line: int) -> str:
        lines = self.lines
        return lines[line - 1] if 1 <= line <= len(lines) else ""


class SourceMap:
    """Every file read in one compilation, by path, so a renderer can quote any span."""

    def __init__(self) -> None:
        self.files: dict[str, SourceFile] = {}

    def add(self, source: SourceFile) -> None:
        self.files[source.path] = source

    def line_text(self, span: Span) -> str:
        source = self.files.get(span.file)
        return source.line_text(span.line) if source else ""
