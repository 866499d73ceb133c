"""Source text and positions: what every diagnostic points at.

This module imports nothing from netc, so every stage (and the diagnostics renderer)
can use it without import cycles.
"""
from __future__ import annotations

from dataclasses import dataclass


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

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
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
