"""The per-user parse cache (netc/parse_cache.py): a hit is the very module a parse gives,
any change to the text is a miss, a cache file can build nothing but AST nodes, the cache
stays bounded, and a check whose files are all cached never imports Lark."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SPECS
from netc import parse_cache, parser
from netc.diagnostics import Diagnostics
from netc.source import SourceFile

ALL_FILES = sorted([*SPECS.glob("*.net"), *(SPECS / "lib").glob("*.net")])


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache directory of its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "netc"


def source_of(path: Path, text: str | None = None) -> SourceFile:
    return SourceFile(str(path), path.read_text() if text is None else text)


def test_a_hit_is_the_module_a_parse_gives():
    for path in ALL_FILES:
        source = source_of(path)
        parsed = parser.parse_source(source, Diagnostics())  # a miss: parses and stores
        cached = parse_cache.load(source)
        assert cached is not None, path
        assert cached[0] == parsed, path
        assert parser.parse_source(source, Diagnostics()) == parsed


def test_string_label_expressions_come_back_with_the_module():
    source = source_of(SPECS / "lib" / "resnet.net")
    module = parser.parse_source(source, Diagnostics())
    _, expressions = parse_cache.load(source)
    labels = [string for string in parser._strings(module) if "{" in string.value]
    assert labels and expressions
    for string in labels:
        for match, span in parser.interpolations(string):
            assert expressions[(match.group(1), span)] == \
                parser.parse_expression(match.group(1), span, Diagnostics())


def test_an_edited_file_is_parsed_again(tmp_path):
    path = tmp_path / "net.net"
    path.write_text("net N() {\n  input x: [3, 8, 8]\n  out x >> conv(3, 4, 3)\n}\n")
    first = parser.parse_source(source_of(path), Diagnostics())
    path.write_text("net N() {\n  input x: [3, 8, 8]\n  out x >> conv(3, 5, 3)\n}\n")
    second = parser.parse_source(source_of(path), Diagnostics())
    assert first != second
    assert parse_cache.load(source_of(path))[0] == second


def test_a_syntax_error_is_never_cached(tmp_path):
    path = tmp_path / "bad.net"
    path.write_text("net N( {\n")
    diags = Diagnostics()
    assert parser.parse_source(source_of(path), diags) is None and diags.has_errors
    assert parse_cache.load(source_of(path)) is None
    diags = Diagnostics()
    assert parser.parse_source(source_of(path), diags) is None and diags.has_errors


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_cache_file_cannot_run_code(tmp_path, own_cache, monkeypatch):
    """A planted entry with the right key but a payload naming `os.system` is refused, and the
    file is parsed instead."""
    monkeypatch.chdir(tmp_path)
    source = source_of(SPECS / "simple_cnn.net")
    expected = parser.parse_source(source, Diagnostics())
    entry = parse_cache._entry(own_cache, source.path)
    entry.write_bytes(parse_cache._key(source) + b"\n" + pickle.dumps((Boom(), {})))
    assert parse_cache.load(source) is None
    assert parser.parse_source(source, Diagnostics()) == expected
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("damage", [b"", b"garbage", b"\n\x80\x05"])
def test_a_damaged_entry_is_a_miss(own_cache, damage):
    source = source_of(SPECS / "simple_cnn.net")
    expected = parser.parse_source(source, Diagnostics())
    parse_cache._entry(own_cache, source.path).write_bytes(damage)
    assert parse_cache.load(source) is None
    assert parser.parse_source(source, Diagnostics()) == expected


def test_the_cache_keeps_at_most_max_entries(tmp_path, own_cache, monkeypatch):
    monkeypatch.setattr(parse_cache, "MAX_ENTRIES", 5)
    text = (SPECS / "simple_cnn.net").read_text()
    for index in range(12):
        path = tmp_path / f"copy{index}.net"
        path.write_text(text)
        parser.parse_source(source_of(path), Diagnostics())
    entries = [e for e in own_cache.iterdir() if e.name.startswith("ast-")]
    assert len(entries) == 5
    assert not [e for e in own_cache.iterdir() if e.name.startswith(".tmp-")]


def test_an_unwritable_cache_directory_is_not_used(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    source = source_of(SPECS / "simple_cnn.net")
    assert parse_cache.cache_dir() is None
    assert parser.parse_source(source, Diagnostics()) is not None
    assert parse_cache.load(source) is None


PROBE = """
import sys
from netc.cli import main
code = main(sys.argv[1:])
print("LARK" if "lark" in sys.modules else "NO-LARK", code)
"""


def test_a_check_of_unchanged_files_does_not_import_lark(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, "-c", PROBE, "check", "-q", str(SPECS / "resnet152.net")]
    runs = [subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
            for _ in range(2)]
    assert [run.stdout.split()[-2:] for run in runs] == [["LARK", "0"], ["NO-LARK", "0"]], \
        [run.stderr for run in runs]
