"""resolve imports: the root spec and every file it imports, parsed, each with its scope.

Imports are resolved relative to the importing file, then along the library search path:
the directories in `NETC_PATH` (`--lib DIR` adds to it), then the `specs/` folder that
ships with netc. `import "lib/resnet.net"` and `import "resnet"` (a library by name) both
work from any directory. A file may only import from those directories and its own tree, so
a spec cannot read arbitrary files. Shipped models are found by name the same way
(`netc check resnet50`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from netc import ast
from netc.diagnostics import Diagnostics
from netc.parser import MAX_SOURCE_BYTES, parse_source
from netc.source import SourceFile, SourceMap, Span

MAX_IMPORT_DEPTH = 32


@dataclass
class LoadedModule:
    """One parsed file and the blocks and nets it can see (its own, then its imports')."""

    ast: ast.Module
    path: Path
    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    nets: dict[str, ast.BlockDef | ast.NetAlias] = field(default_factory=dict)
    owner: dict[str, "LoadedModule"] = field(default_factory=dict)  # name -> defining module


@dataclass
class Program:
    root: LoadedModule | None
    modules: dict[Path, LoadedModule]
    sources: SourceMap


def display_path(path: Path) -> str:
    """A path as the user should read it in diagnostics: relative to the cwd when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_spec_text(path: Path) -> str | None:
    """A spec file's text, or None when it is over the size limit: the size is checked
    before the text is read (by stat, then by reading at most one byte past the limit, for
    files whose size stat does not tell), so a huge file is never read whole."""
    if path.stat().st_size > MAX_SOURCE_BYTES:
        return None
    with path.open("rb") as handle:
        data = handle.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        return None
    text = data.decode("utf-8")
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark is no text


def library_path() -> list[Path]:
    """Where imports and model names are looked up after the importing file's directory:
    `NETC_PATH` (os.pathsep-separated), then the shipped `specs/`."""
    extra = [Path(p).expanduser() for p in os.environ.get("NETC_PATH", "").split(os.pathsep) if p]
    dirs = []
    for path in extra + _shipped_spec_dirs():
        try:
            if path.is_dir() and path.resolve() not in dirs:
                dirs.append(path.resolve())
        except OSError:
            continue
    return dirs


_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def resolve_spec(spec: str | Path) -> Path | None:
    """A spec argument as a file: a path that exists, else a model name (`resnet50`, no
    suffix, no slash) found as `<name>.net` along the library path; None if neither."""
    path = Path(spec)
    try:
        if path.is_file():
            return path
    except (OSError, ValueError):
        return None
    text = str(spec)
    if not _MODEL_NAME.fullmatch(text) or text.endswith(".net"):
        return None
    for directory in library_path():
        candidate = directory / f"{text}.net"
        if candidate.is_file():
            return candidate
    return None


def list_models() -> list[str]:
    """The models found by name: every `.net` file at the top of the library path."""
    names = set()
    for directory in library_path():
        names |= {p.stem for p in directory.glob("*.net") if p.is_file()}
    return sorted(names)


def load_program(spec: str | Path, diags: Diagnostics, allowed: list[Path] | None = None) -> Program:
    root_path = Path(spec).resolve()
    allowed_roots = [root_path.parent] + [p.resolve() for p in (allowed or [])]
    allowed_roots += library_path()
    loader = _Loader(diags, allowed_roots)
    root = loader.load(root_path, None, ())
    return Program(root, loader.modules, loader.sources)


def _shipped_spec_dirs() -> list[Path]:
    """`specs/` as installed in a wheel (inside the package) and in a source checkout."""
    here = Path(__file__).resolve().parent
    return [here / "specs", here.parent / "specs"]


class _Loader:
    def __init__(self, diags: Diagnostics, allowed_roots: list[Path]) -> None:
        self.diags = diags
        self.allowed_roots = allowed_roots
        self.modules: dict[Path, LoadedModule] = {}
        self.sources = SourceMap()

    def load(self, path: Path, span: Span | None, chain: tuple[Path, ...]) -> LoadedModule | None:
        if path in self.modules:
            return self.modules[path]
        if path in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(path):], path))
            self.diags.error("E206", f"circular import: {cycle}", span,
                             hint="move the shared blocks into a library both files import")
            return None
        if len(chain) > MAX_IMPORT_DEPTH:
            self.diags.error("E211", f"imports nest deeper than {MAX_IMPORT_DEPTH} files", span)
            return None
        try:
            text = read_spec_text(path)
            if text is None:
                self.diags.error("E211", f"`{display_path(path)}` is larger than "
                                         f"{MAX_SOURCE_BYTES:,} bytes, the limit for a spec file",
                                 span, hint="is this the right file?")
                return None
            source = SourceFile(display_path(path), text)
        except (OSError, UnicodeDecodeError) as error:
            reason = "it is not UTF-8 text" if isinstance(error, UnicodeDecodeError) else \
                (error.strerror or str(error)).lower()
            self.diags.error("E205", f"cannot read `{display_path(path)}`: {reason}", span)
            return None
        self.sources.add(source)
        tree = parse_source(source, self.diags)
        if tree is None:
            return None
        module = LoadedModule(tree, path)
        for imp in tree.imports:
            imported = self._import(module, imp, (*chain, path))
            if imported is not None:
                for name, block in imported.blocks.items():
                    module.blocks.setdefault(name, block)
                    module.owner.setdefault(name, imported.owner[name])
                for name, net in imported.nets.items():
                    module.nets.setdefault(name, net)
                    module.owner.setdefault(name, imported.owner[name])
        for block in tree.blocks:
            self._define(module, module.blocks, block)
        for net in tree.nets:
            self._define(module, module.nets, net)
        self.modules[path] = module
        return module

    def _define(self, module: LoadedModule, table: dict, node) -> None:
        previous = module.owner.get(node.name)
        if previous is module:
            self.diags.error("E203", f"`{node.name}` is defined twice in this file", node.span,
                             hint="rename one of them")
            return
        table[node.name] = node  # a local definition shadows an imported one
        module.owner[node.name] = module

    def _candidates(self, module: LoadedModule, name: str) -> list[Path]:
        """Where `import "name"` may be: beside the importing file, then along the library
        path; a bare name (`"resnet"`) is also tried as `lib/<name>.net` and `<name>.net`."""
        relative = [Path(name)]
        if Path(name).suffix == "" and "/" not in name:
            relative += [Path("lib") / f"{name}.net", Path(f"{name}.net")]
        bases = [module.path.parent] + library_path()
        return [(base / rel).resolve() for base in bases for rel in relative]

    def _import(self, module: LoadedModule, imp: ast.Import, chain) -> LoadedModule | None:
        try:
            if "\x00" in imp.path or not imp.path.strip():
                raise ValueError("not a file path")
            candidates = self._candidates(module, imp.path)
        except (ValueError, OSError, RuntimeError):
            self.diags.error("E205", f"`{imp.path!r}` is not a file path", imp.span)
            return None
        target = next((c for c in candidates if _is_file(c)), candidates[0])
        if not any(target.is_relative_to(root) for root in self.allowed_roots):
            self.diags.error("E205", f"import `{imp.path}` is outside the allowed directories",
                             imp.span, hint="import only from the spec's directory or `specs/`")
            return None
        if not _is_file(target):
            self.diags.error("E205", f"cannot find `{imp.path}`", imp.span,
                             notes=(f"looked for {display_path(target)}, then along the library "
                                    f"path ({_places(len(candidates) - 1)})",),
                             hint="import paths are relative to the importing file, then to "
                                  "the directories of NETC_PATH / --lib and netc's own specs")
            return None
        return self.load(target, imp.span, chain)


def _places(count: int) -> str:
    return f"{count} more place" + ("" if count == 1 else "s")


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
