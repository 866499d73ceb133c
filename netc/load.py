"""load: generated source -> a live `nn.Module` class; weights into it; TorchScript,
torch.export and ONNX artifacts out of it.

This is the only module (with `netc.api.build`) that imports torch. The source is executed
under a fake file name registered in `linecache`, as torch.fx does: TorchScript needs to
read a class's source, and tracebacks then show the generated lines.
"""
from __future__ import annotations

import contextlib
import itertools
import linecache
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

# torch warns on import when NumPy is absent; netc does not use NumPy
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.fx.experimental._config as fx_config  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.export import Dim  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from netc.analysis import check_memory, min_input_size  # noqa: E402
from netc.codegen import PythonCode  # noqa: E402
from netc.diagnostics import WeightsMismatch  # noqa: E402
from netc.files import PathError, atomic_write, check_input, write_bytes  # noqa: E402

_counter = itertools.count()
LISTED_KEYS = 10  # a mismatch names at most this many keys of each kind


def load_class(code: PythonCode, label: str) -> type[torch.nn.Module]:
    """Execute the generated source and return its module class."""
    cls = _execute(code.src, label)[code.class_name]
    cls.netc_source = code.src
    return cls


def instantiate(code: PythonCode, graph, limits: dict | None = None, *, label: str | None = None,
                sources=None) -> torch.nn.Module:
    """A live module of a valid compilation. Its parameters and buffers are counted from the
    graph first, so a net past `limits["memory"]` (bytes; default 4 GiB) is a NetcError
    (E211) naming its largest layer instead of an allocation that swaps or is killed."""
    check_memory(graph, limits, sources=sources)
    return load_class(code, label or graph.name)()


_EXECUTED: dict[str, dict] = {}  # generated source -> the namespace it defined (per process)


def _execute(src: str, label: str = "net") -> dict:
    """Run generated source once per process. Its module classes pickle by source (see
    `_rebuild`): a built model can be deep-copied, pickled and `torch.save`d whole, and
    loaded in another process where netc is installed."""
    if src not in _EXECUTED:
        filename = f"<netc:{label}:{next(_counter)}>"
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        namespace: dict = {"__name__": f"netc_generated_{label}"}
        exec(compile(src, filename, "exec"), namespace)  # our own generated code, never spec text
        for value in list(namespace.values()):
            if isinstance(value, type) and issubclass(value, torch.nn.Module) and \
                    value.__module__ == namespace["__name__"]:
                value.__reduce_ex__ = _reduce_by_source
                value._netc_source = src
        _EXECUTED[src] = namespace
    return _EXECUTED[src]


def _reduce_by_source(module: torch.nn.Module, protocol):
    """Pickle a generated module as (its source, its class's name, its state): the class
    lives in no importable module, so it is recreated from the source when unpickled."""
    cls = type(module)
    return _rebuild, (cls._netc_source, cls.__qualname__), module.__getstate__()


def _rebuild(src: str, qualname: str) -> torch.nn.Module:
    cls = _execute(src)[qualname]
    return cls.__new__(cls)


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """TorchScript, with its deprecation warning silenced: scripting is still asked for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        return torch.jit.script(module)


# ---- weights

def load_weights(module: torch.nn.Module, source) -> torch.nn.Module:
    """Load a state_dict into `module`, strictly: from a mapping, or from a file written by
    torch.save (read with weights_only, so a checkpoint cannot run code). The state_dict may
    be bare or nested under "state_dict" or "model", as training scripts save it. A file
    that cannot be read is a PathError; weights that do not fit are a WeightsMismatch naming
    the missing, unexpected and mis-shaped keys (the module is then partly loaded, as after
    torch's own strict load)."""
    if isinstance(source, Mapping):
        state, label = _state_dict_in(source), "the given state_dict"
    else:
        state, label = _read_state_dict(Path(source)), f"`{source}`"
    own = module.state_dict()
    misshaped = {key: (tuple(value.shape), tuple(own[key].shape)) for key, value in state.items()
                 if key in own and value.shape != own[key].shape}
    # torch counts missing and unexpected keys itself (BatchNorm accepts old checkpoints
    # without num_batches_tracked); mis-shaped ones would stop it, so they are held back
    result = module.load_state_dict({k: v for k, v in state.items() if k not in misshaped},
                                    strict=False)
    missing = [key for key in result.missing_keys if key not in misshaped]
    if missing or result.unexpected_keys or misshaped:
        raise WeightsMismatch(_mismatch(label, type(module).__name__, missing,
                                        result.unexpected_keys, misshaped))
    return module


def _read_state_dict(path: Path) -> Mapping:
    check_input(path, "weights")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the file's bytes are input: any failure means "unreadable"
        raise PathError(f"cannot read weights `{path}`: {_why_unreadable(error)}") from None
    try:
        return _state_dict_in(loaded)
    except TypeError as error:
        raise PathError(f"cannot read weights `{path}`: {error}") from None


def _why_unreadable(error: Exception) -> str:
    """torch.load's reason in one clause: its weights_only messages run to paragraphs and
    suggest loading unsafely, which netc never does."""
    text = str(error)
    if "Unsupported global" in text:
        return ("it holds Python objects besides tensors (a whole pickled model?), which netc "
                "does not unpickle; save `model.state_dict()` instead")
    detail = (text.partition("WeightsUnpickler error:")[2] or text).strip()
    if not detail:
        return "the file is empty or cut short"
    return "torch.load failed: " + detail.splitlines()[0].split(". ")[0]


def _state_dict_in(loaded) -> Mapping:
    """The state_dict in what torch.load gave: bare, or under "state_dict" (Lightning, most
    training loops) or "model" (torchvision's reference scripts)."""
    if isinstance(loaded, Mapping):
        nested = [loaded[key] for key in ("state_dict", "model")
                  if isinstance(loaded.get(key), Mapping)]
        loaded = nested[0] if nested else loaded
    if not (isinstance(loaded, Mapping)
            and all(isinstance(value, torch.Tensor) for value in loaded.values())):
        raise TypeError("no state_dict in it: expected a mapping of names to tensors, bare or "
                        "under `state_dict` or `model`")
    return loaded


def _mismatch(label: str, net: str, missing: list[str], unexpected: list[str],
              misshaped: dict[str, tuple]) -> str:
    lines = [f"the weights in {label} do not fit {net}"]
    sections = [
        ("missing from the weights", missing),
        ("unexpected (not in the module)", unexpected),
        ("of another shape", [f"{key}: {list(theirs)} in the weights, {list(ours)} in the module"
                              for key, (theirs, ours) in misshaped.items()]),
    ]
    for title, items in sections:
        if items:
            lines.append(f"  {title} ({len(items)}):")
            lines += [f"    {item}" for item in items[:LISTED_KEYS]]
            if len(items) > LISTED_KEYS:
                lines.append(f"    and {len(items) - LISTED_KEYS} more")
    prefix = _extra_prefix(missing, unexpected)
    if prefix:
        lines.append(f"  hint: every key in the weights starts with `{prefix}` (DataParallel, "
                     "a Lightning module); strip it from the keys")
    return "\n".join(lines)


def _extra_prefix(missing: list[str], unexpected: list[str]) -> str | None:
    """`module.` or `model.` when that prefix is the only difference, the usual cause."""
    first = min(unexpected, default="")
    prefix = first.partition(".")[0] + "."
    stripped = {key.removeprefix(prefix) for key in unexpected}
    if missing and all(key.startswith(prefix) for key in unexpected) and set(missing) <= stripped:
        return prefix
    return None


# ---- artifacts

@contextlib.contextmanager
def _quiet():
    """torch.export and the ONNX converter talk (solver warnings through `logging`,
    deprecation notes through `warnings`); a build prints only its own report."""
    loggers = [logging.getLogger(name) for name in ("torch", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _spatial_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Height and width of an input's batched tensor; a feature vector [F] has none."""
    return (2, 3) if len(shape) == 3 else ()


def _dynamic_shapes(graph, spatial: bool) -> tuple[dict, ...]:
    """One batch dimension shared by all inputs (strict: it must stay dynamic); height and
    width AUTO, so torch keeps them dynamic where the net allows and fixes them where not."""
    batch = Dim("batch")
    return tuple({0: batch, **{axis: Dim.AUTO for axis in _spatial_axes(i.shape) if spatial}}
                 for i in graph.inputs)


def _axis_names(graph, spatial: bool = True) -> tuple[dict, ...]:
    """Names for the dynamic axes of the ONNX inputs (torch's own are s0, s1, ...)."""
    words = ("height", "width")
    return tuple({0: "batch", **{axis: f"{i.name}_{word}" for axis, word
                                 in zip(_spatial_axes(i.shape), words) if spatial}}
                 for i in graph.inputs)


def _onnx_takes_any_size(graph) -> bool:
    """ONNX pools with a fixed window: the exporter turns an adaptive pool to a size other
    than 1 (VGG's 7x7) into a window computed at the example size, which at another size
    gives another shape (onnxruntime then refuses the classifier). Such nets are exported
    with a dynamic batch only; global pooling (to 1x1) stays dynamic."""
    adaptive = {"adaptive_avgpool", "adaptive_maxpool"}
    return not any(node.op in adaptive and node.args["output_size"] not in (1, [1, 1])
                   for node in graph)


def _example_inputs(graph) -> tuple[torch.Tensor, ...]:
    """Batch 2 (torch fixes a batch of 1) at the declared sizes, as fake tensors: tracing
    needs only their shapes, so a huge declared input allocates nothing."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        return tuple(torch.empty(2, *i.shape) for i in graph.inputs)


def _takes_any_size(graph) -> bool:
    """netc's own analysis: the built model takes every valid height and width (no layer's
    parameters depend on them), so they can be dynamic. SimpleCNN's `fc1` pins 32x32."""
    sizes = min_input_size(graph)
    return sizes is not None and sizes.any_size


def _agrees_at_another_size(module: torch.nn.Module, program, graph) -> bool:
    """torch.export keeps the branch a module's Python code took at the traced size (a
    helper's `shift if window < size else 0` did): a program can be exact at the declared
    size and silently wrong at another. Both run at the smallest size netc proved valid (small
    real tensors); the sizes stay dynamic only if they agree, or if there is no other size."""
    sizes = min_input_size(graph)
    if (len(graph.inputs) != 1 or sizes is None
            or tuple(sizes.shape) == tuple(graph.inputs[0].shape)):
        return True
    x = torch.randn(2, *sizes.shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            expected, actual = module(x), program.module()(x)
    except Exception:  # the program refuses that size: it is not one program for all sizes
        return False
    expected, actual = tree_leaves(expected), tree_leaves(actual)
    return len(expected) == len(actual) and all(
        a.shape == e.shape and torch.allclose(a, e, rtol=1e-4, equal_nan=True,
                                              atol=1e-4 * float(e.abs().max().clamp_min(1e-6)))
        for a, e in zip(actual, expected))


def export_program(module: torch.nn.Module, graph,
                   spatial: bool = True) -> torch.export.ExportedProgram:
    """torch.export of the module with a dynamic batch and, where the net takes any size,
    dynamic height and width. Tracing is size-oblivious: otherwise every `size != 1` test (a
    stage's map may shrink to 1x1) pins the spatial range above that size. Should torch fail
    to trace the spatial sizes, or the program differ from the module at another size, only
    the batch is dynamic."""
    module.eval()
    inputs = _example_inputs(graph)

    def export(spatial: bool) -> torch.export.ExportedProgram:
        with _quiet(), fx_config.patch(backed_size_oblivious=True):
            return torch.export.export(module, inputs,
                                       dynamic_shapes=_dynamic_shapes(graph, spatial))

    program = None
    if spatial and _takes_any_size(graph):
        with contextlib.suppress(Exception):  # the optional part; the batch alone must work
            program = export(spatial=True)
        if program is not None:
            # (as saved and loaded: with its fake example inputs, `module()` would also check
            # guards that a loaded program does not)
            program.example_inputs = None
            with _quiet():
                if not _agrees_at_another_size(module, program, graph):
                    program = None  # sizes fixed: a wrong answer at another size is silent
    if program is None:
        program = export(spatial=False)
    program.example_inputs = None  # fake tensors: nothing worth saving
    return program


def save_torchscript(module: torch.nn.Module, path: Path) -> None:
    scripted = script(module.eval())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        atomic_write(path, lambda staged: torch.jit.save(scripted, str(staged)))


def save_export(module: torch.nn.Module, graph, path: Path) -> None:
    program = export_program(module, graph)

    def save(staged: Path) -> None:  # an open file: torch warns about a path not ending .pt2
        with staged.open("wb") as stream:
            torch.export.save(program, stream)

    atomic_write(path, save)


def save_onnx(module: torch.nn.Module, graph, path: Path) -> None:
    """ONNX through the dynamo exporter (needs onnx and onnxscript: `netc[onnx]`), from the
    same exported program as `save_export`. Weights are inside the file, unless the model
    passes ONNX's 2 GB limit: then they go beside it, in `<name>.data`."""
    spatial = _onnx_takes_any_size(graph)
    program = export_program(module, graph, spatial)
    with _quiet():
        converted = torch.onnx.export(program, (), dynamo=True, verbose=False,
                                      dynamic_shapes=_axis_names(graph, spatial))
        atomic_write(path, lambda staged: converted.save(staged))


def write_artifact(module: torch.nn.Module, code: PythonCode, graph, fmt: str, path: Path) -> None:
    """One built net as `fmt`: torchscript, export (torch.export), onnx, or py (the generated
    source; `module` is not used); written atomically."""
    if fmt == "py":
        write_bytes(path, code.src.encode("utf-8"))
    elif fmt == "torchscript":
        save_torchscript(module, path)
    elif fmt == "export":
        save_export(module, graph, path)
    else:
        save_onnx(module, graph, path)
