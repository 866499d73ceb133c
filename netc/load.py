"""load: generated source -> a live `nn.Module` class; TorchScript and torch.export artifacts.

This is the only module (with `netc.api.build`) that imports torch. The source is executed
under a fake file name registered in `linecache`, as torch.fx does: TorchScript needs to
read a class's source, and tracebacks then show the generated lines.
"""
from __future__ import annotations

import itertools
import linecache
import os
import tempfile
import warnings
from pathlib import Path

# torch warns on import when NumPy is absent; netc does not use NumPy
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

from netc.codegen import PythonCode

_counter = itertools.count()


def load_class(code: PythonCode, label: str) -> type[torch.nn.Module]:
    """Execute the generated source and return its module class."""
    filename = f"<netc:{label}:{next(_counter)}>"
    linecache.cache[filename] = (len(code.src), None, code.src.splitlines(True), filename)
    namespace: dict = {"__name__": f"netc_generated_{label}"}
    exec(compile(code.src, filename, "exec"), namespace)  # our own generated code, never spec text
    cls = namespace[code.class_name]
    cls.netc_source = code.src
    return cls


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """TorchScript, with its deprecation warning silenced: scripting is still asked for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        return torch.jit.script(module)


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename: a failure leaves
    no partial artifact behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_torchscript(module: torch.nn.Module, path: Path) -> None:
    scripted = script(module.eval())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        atomic_write(path, lambda temp: torch.jit.save(scripted, temp))


def save_export(module: torch.nn.Module, example_inputs: tuple, path: Path) -> None:
    exported = torch.export.export(module.eval(), example_inputs)
    atomic_write(path, lambda temp: torch.export.save(exported, temp))


def write_artifact(module: torch.nn.Module, code: PythonCode, graph, fmt: str, path: Path) -> None:
    """One built net as `fmt`: torchscript, export (torch.export with a zero example
    input) or py (the generated source); written atomically."""
    if fmt == "py":
        atomic_write(path, lambda temp: Path(temp).write_text(code.src, encoding="utf-8"))
    elif fmt == "torchscript":
        save_torchscript(module, path)
    else:
        example = tuple(torch.zeros(1, *i.shape) for i in graph.inputs)
        save_export(module, example, path)
