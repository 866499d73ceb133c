"""A per-user cache of parsed spec files, so that checking a net whose files did not change
skips Lark altogether: importing Lark and parsing `lib/resnet.net` are about half of
`netc check specs/resnet152.net` (bench/bench_check.py).

An entry is the `ast.Module` of one file (and the string-label expressions parsed with it),
stored under the file's path and keyed by a digest of the path, the text and the parser's
own code (grammar, AST classes, builder), so that any change to either is a miss. It is a
pickle read back by an unpickler that builds only `netc.ast` nodes and `Span`s: a cache file
cannot name any other class or function, so it cannot run code. Entries are written
atomically; the cache keeps at most `MAX_ENTRIES` files (the oldest go first), and a cache
that cannot be read or written is simply not used.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path

from netc import ast
from netc.source import SourceFile, Span

MAX_ENTRIES = 256
_FORMAT = b"netc-ast-1"
_PREFIX = "ast-"

# What a cache file may build: the AST node classes and Span, nothing else.
_ALLOWED = {("netc.ast", name): value for name, value in vars(ast).items()
            if isinstance(value, type) and value.__module__ == "netc.ast"}
_ALLOWED[("netc.source", "Span")] = Span


def cache_dir() -> Path | None:
    """netc's per-user cache directory (also where Lark keeps its parser tables), created if
    missing; None if there is none that this user can write. Never a shared temp dir: the
    Lark table cache is a pickle read without restrictions."""
    try:  # (no home directory: Path.home() raises RuntimeError)
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netc"
        base.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):
        return None
    return base if os.access(base, os.W_OK) else None


@functools.cache
def _code_digest() -> bytes:
    """The parser's own code: a new grammar, AST class or builder makes every entry stale.
    (Read from the files, so that a hit imports neither Lark nor the builder.)"""
    from netc import parser

    here = Path(ast.__file__)
    digest = hashlib.sha256(_FORMAT)
    for path in (parser.grammar_path(), here, here.with_name("ast_builder.py"),
                 Path(parser.__file__)):
        digest.update(path.read_bytes())
    return digest.digest()


def _key(source: SourceFile) -> bytes:
    digest = hashlib.sha256(_code_digest())
    for part in (source.path, source.text):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest().encode()


def _entry(directory: Path, path: str) -> Path:
    name = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return directory / f"{_PREFIX}{name}.pickle"


class _AstUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not an AST class") from None


def load(source: SourceFile) -> tuple[ast.Module, dict] | None:
    """The cached parse of `source` (its module and string-label expressions), or None."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        data = _entry(directory, source.path).read_bytes()
        key, _, payload = data.partition(b"\n")
        if key != _key(source):
            return None
        module, expressions = _AstUnpickler(io.BytesIO(payload)).load()
    except Exception:  # missing, stale, truncated or foreign: parse instead
        return None
    if not isinstance(module, ast.Module) or not isinstance(expressions, dict):
        return None
    return module, expressions


def store(source: SourceFile, module: ast.Module, expressions: dict) -> None:
    """Keep the parse of `source` for the next run; quietly nothing if that fails."""
    directory = cache_dir()
    if directory is None:
        return
    try:
        payload = pickle.dumps((module, expressions), protocol=pickle.HIGHEST_PROTOCOL)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(_key(source) + b"\n" + payload)
            os.replace(temporary, _entry(directory, source.path))
        except BaseException:
            os.unlink(temporary)
            raise
        _prune(directory)
    except (OSError, pickle.PicklingError, RecursionError):
        return


def _prune(directory: Path) -> None:
    """At most MAX_ENTRIES parses are kept (each file checked from a new temp dir adds one)."""
    entries = [entry for entry in directory.iterdir() if entry.name.startswith(_PREFIX)]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda entry: entry.stat().st_mtime)
    for entry in entries[:len(entries) - MAX_ENTRIES]:
        entry.unlink(missing_ok=True)
