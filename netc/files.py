"""Output files: which paths netc will write, and writing them atomically. No torch here, so
`netc graph` and `netc build --format py` stay light.

netc writes only new files or replaces regular ones. A directory, a missing parent directory,
or a device, FIFO or socket (`-o /dev/null`) is refused up front: replacing `/dev/null` by a
rename would delete the device node, and creating parents silently hides typos.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable


class PathError(Exception):
    """A file argument netc cannot use: an output it will not write, or an input it cannot
    read (the CLI exits 2, as for a usage error)."""


def check_output(path: str | Path) -> Path:
    """`path` as a Path if netc may write it, else a PathError saying why."""
    text = os.fspath(path)
    path = Path(text)
    if text.endswith(os.sep) or path.is_dir():
        raise PathError(f"cannot write `{text}`: it is a directory; give a file name")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise PathError(f"cannot write `{text}`: not a regular file (a device, FIFO or socket); "
                        "netc writes new files or replaces regular ones")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise PathError(f"cannot write `{text}`: directory `{parent}` {what}")
    return path


def check_input(path: str | Path, what: str) -> Path:
    """`path` as a Path if it is a file to read, else a PathError (`what`: "weights", ...)."""
    path = Path(path)
    if not path.is_file():
        why = "it is a directory" if path.is_dir() else "no such file"
        raise PathError(f"cannot read {what} `{path}`: {why}")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(staged)` with a path of the same name in a fresh hidden directory beside
    `path`, then rename into place: a failure leaves no partial artifact. The same name keeps
    writers that look at the suffix quiet (torch.export.save), files are created as open()
    creates them (the user's umask, not mkstemp's 0600), and side files a writer adds (ONNX
    external weights, `model.onnx.data`) move first, so the main file never names a missing one."""
    import tempfile  # here, not at the top: `netc check` and `--help` start without it

    path = check_output(path)
    try:
        staging = tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise PathError(f"cannot write `{path}`: {error.strerror}") from None
    with staging as folder:
        staged = Path(folder) / path.name
        write(staged)
        for extra in Path(folder).iterdir():
            if extra != staged:
                os.replace(extra, check_output(path.parent / extra.name))
        os.replace(staged, path)


def write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda staged: staged.write_bytes(data))
