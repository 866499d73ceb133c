"""In-place ops in generated code never change what a module computes.

The code generator runs some ops in place (`F.relu(x, inplace=True)`, residual `a.add_(b)`)
when it believes nobody reads the overwritten value again. Getting that wrong is a silent
miscompilation: a value read later, directly or through a view (`flatten`, `reshape`,
`identity`, a `split` part), holds the activation's result instead of its own, or autograd
finds a tensor it saved for backward overwritten. So every spec here is lowered twice from
one graph, optimised (`emit_module(graph, inplace=True)`) and naive (`inplace=False`: every
op out of place), and the two modules, given the same weights and input, must agree on:

- the output, in training and in evaluation mode, with and without autograd;
- the gradients of a fixed scalar loss with respect to the input and every parameter
  (a backward that raises only in the optimised module is a failure too);
- the caller's input tensor, which no forward may overwrite: neither the net's nor that of
  a block or sequence (a submodule someone may call directly).

The specs are random small DAGs (hypothesis, derandomized; `NETC_INPLACE_EXAMPLES=2000`
runs more), plus the regressions found so far. A self-test makes sure the checker does
catch unsafe in-place ReLUs, each for the right reason.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, given, note, settings, strategies as st

import netc
import netc.codegen
from netc.codegen import PythonCode
from netc.load import load_class

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("NETC_INPLACE_EXAMPLES", "60"))
# A failure reports its spec and generated source unshrunk: shrinking one takes minutes
# (every candidate is compiled and run). NETC_INPLACE_SHRINK=1 shrinks it to a minimal spec.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("NETC_INPLACE_SHRINK") else [])
INPLACE_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("NETC_INPLACE_RANDOM"),
    phases=PHASES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BATCH = 2
# Both lowerings run the same kernels in the same order (in double precision), so they agree
# to rounding; an aliasing bug is off by whole activations.
TOLERANCE = dict(rtol=1e-9, atol=1e-12)
# an in-place call in generated code: `F.relu(a, inplace=True)`, `a.add_(b)`, `a.relu_()`
INPLACE_CALL = re.compile(r"inplace=True|\.[A-Za-z]\w*_\(")

_labels = itertools.count()


# (small tensors: intra-op threads only contend on a shared machine)
pytestmark = pytest.mark.usefixtures("one_thread")


# -- building the two lowerings --------------------------------------------------------------

def lowerings(path: Path) -> tuple[PythonCode, PythonCode]:
    """The optimised and the naive source of one spec, from one compiled graph."""
    compiled = netc.compile(path)
    assert compiled.ok, netc.NetcError(compiled.diagnostics, compiled.sources)
    fast = netc.codegen.emit_module(compiled.graph, "spec", inplace=True)
    naive = netc.codegen.emit_module(compiled.graph, "spec", inplace=False)
    assert not INPLACE_CALL.search(naive.src), f"the naive lowering runs ops in place:\n{naive.src}"
    return fast, naive


def modules(fast: PythonCode, naive: PythonCode, seed: int = 0):
    """Both modules in double precision, with the same random weights and BN statistics."""
    label = f"inplace{next(_labels)}"
    fast_module = load_class(fast, label)().double()
    naive_module = load_class(naive, label + "_naive")().double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in fast_module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                values = torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype) + 0.5
            else:
                values = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.5
            tensor.copy_(values)
    naive_module.load_state_dict(fast_module.state_dict())
    return fast_module, naive_module


# -- comparing them ----------------------------------------------------------------------------

@contextlib.contextmanager
def submodule_inputs_kept(module: torch.nn.Module):
    """Watches the submodules with generated code (blocks, `nn.Sequential`s): yields the list
    of those whose forward overwrote a tensor their caller passed in. Whoever calls a block
    directly (`model.layer1(t)`) must get `t` back unchanged, as from the whole net. (Layers
    such as `nn.ReLU(inplace=True)` inside a sequence overwrite their input by design.)"""
    overwritten: list[str] = []
    saved: dict[str, list[torch.Tensor]] = {}
    handles = []
    generated = type(module).__module__  # the classes of blocks come from the same source
    for path, sub in module.named_modules():
        if not path or not (isinstance(sub, torch.nn.Sequential) or
                            type(sub).__module__ == generated):
            continue

        def before(_, args, path=path):
            saved[path] = [a.detach().clone() for a in args if isinstance(a, torch.Tensor)]

        def after(_, args, out, path=path):
            now = [a.detach() for a in args if isinstance(a, torch.Tensor)]
            if any(not torch.equal(a, b) for a, b in zip(now, saved.pop(path))):
                overwritten.append(path)

        handles += [sub.register_forward_pre_hook(before), sub.register_forward_hook(after)]
    try:
        yield overwritten
    finally:
        for handle in handles:
            handle.remove()


def _run(module: torch.nn.Module, x: torch.Tensor, who: str):
    """One forward and backward: (output, {name: gradient}). Fails if the input (or a
    submodule's) is overwritten or if the forward or backward raises."""
    module.zero_grad(set_to_none=True)
    given_x = x.clone().requires_grad_()
    out, raised = None, None
    with submodule_inputs_kept(module) as overwritten:
        try:
            out = module(given_x)
        except RuntimeError as error:  # e.g. an in-place op on a leaf, or broadcasting into it
            raised = repr(error)
    # raised outside the `except`: the traceback of the generated code (a file name that
    # differs on every load) would make hypothesis see a new failure each time it replays one
    assert raised is None, f"{who} module: forward raised {raised}"
    assert torch.equal(given_x.detach(), x), f"{who} module: forward overwrote its input"
    assert not overwritten, f"{who} module: {overwritten} overwrote their callers' tensors"
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    try:
        (out * weights).sum().backward()
    except RuntimeError as error:  # e.g. a tensor saved for backward was modified in place
        raised = repr(error)
    assert raised is None, f"{who} module: backward raised {raised}"
    grads = {"<input>": given_x.grad}
    grads.update((name, p.grad) for name, p in module.named_parameters())
    return out.detach().clone(), grads


def _run_no_grad(module: torch.nn.Module, x: torch.Tensor, who: str) -> torch.Tensor:
    given_x = x.clone()
    with torch.no_grad(), submodule_inputs_kept(module) as overwritten:
        out = module(given_x)
    assert torch.equal(given_x, x), f"{who} module: forward (no_grad) overwrote its input"
    assert not overwritten, f"{who} module: {overwritten} overwrote their callers' tensors"
    return out.clone()


def assert_same_behaviour(fast: torch.nn.Module, naive: torch.nn.Module,
                          input_shape: tuple[int, ...], seed: int = 0) -> None:
    """The optimised module computes what the naive one does: outputs, gradients and the
    caller's input, in training and evaluation mode."""
    x = torch.randn((BATCH, *input_shape), generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    for training in (True, False):
        mode = "train" if training else "eval"
        fast.train(training)
        naive.train(training)
        expected, expected_grads = _run(naive, x, "naive")
        got, got_grads = _run(fast, x, "optimised")
        torch.testing.assert_close(got, expected, **TOLERANCE,
                                   msg=lambda m: f"{mode} mode: outputs differ: {m}")
        assert got_grads.keys() == expected_grads.keys()
        for name, grad in expected_grads.items():
            if grad is None:
                assert got_grads[name] is None, f"{mode} mode: {name}: unexpected gradient"
                continue
            assert got_grads[name] is not None, f"{mode} mode: {name}: no gradient"
            torch.testing.assert_close(got_grads[name], grad, **TOLERANCE,
                                       msg=lambda m, n=name: f"{mode} mode: grad of {n}: {m}")
        torch.testing.assert_close(_run_no_grad(fast, x, "optimised"),
                                   _run_no_grad(naive, x, "naive"), **TOLERANCE,
                                   msg=lambda m: f"{mode} mode, no_grad: outputs differ: {m}")


def check_spec(path: Path, input_shape: tuple[int, ...]) -> None:
    fast, naive = lowerings(path)
    failure = None
    try:
        assert_same_behaviour(*modules(fast, naive), input_shape)
    except AssertionError as error:
        failure = str(error)
    assert failure is None, f"{failure}\n\nspec:\n{path.read_text()}\noptimised source:\n{fast.src}"


# -- random specs ------------------------------------------------------------------------------

class _SpecWriter:
    """Draws a random DAG of named tensors, tracking shapes so that nearly every spec checks.

    Tensors are `[C, H, W]` maps or `[F]` vectors; a tensor is an expression (`t3`, `p2[1]`).
    Operands favour the latest tensor and tensors already read, so values stay live past the
    in-place candidates that read them, directly and through views; activations favour
    tensors that may hold negative values (a ReLU of a ReLU would overwrite a value with
    itself, which no comparison can see). Inputs are often read once (as in most real nets),
    the case where running an op in place on them looks safe and is not. Layers are labelled
    (`c3: conv(4, 3)`), grouped in named lists (`s5: [conv(4, 3), bn, relu]`, an
    `nn.Sequential`), or come from blocks written on the way (`u7: B2`, a submodule whose
    `forward` gets the caller's tensor)."""

    def __init__(self, draw, input_name: str, input_shape: tuple[int, ...],
                 blocks: list[tuple[str, tuple[int, ...], tuple[int, ...], str]], depth: int = 0):
        self.draw = draw
        self.blocks = blocks  # (name, input shape, output shape, text), shared by all writers
        self.depth = depth    # 0: the net, 1: a block, 2: a block called from a block
        self.lines: list[str] = []
        self.input = input_name
        self.tensors: list[tuple[str, tuple[int, ...]]] = [(input_name, input_shape)]
        self.used: set[str] = set()
        self.nonneg: set[str] = set()  # tensors known to hold no negative value
        self.count = 0
        if draw(st.booleans()):  # the input read once, by the first statement
            self._chain(first=draw(st.sampled_from(["relu", "relu6", "identity >> relu",
                                                    "flatten >> relu", ""])))
            self.tensors = [t for t in self.tensors if t[0] != input_name]

    # helpers
    def name(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    label = name

    def pick(self, accept=lambda shape: True) -> tuple[str, tuple[int, ...]] | None:
        choices = [t for t in self.tensors if accept(t[1])]
        if not choices:
            return None
        how = self.draw(st.sampled_from(["latest"] * 4 + ["reread"] * 3 + ["any"] * 3))
        reread = [t for t in choices if t[0] in self.used]
        if how == "latest":
            chosen = choices[-1]
        else:
            chosen = self.draw(st.sampled_from(reread if how == "reread" and reread else choices))
        self.used.add(chosen[0])
        return chosen

    def add(self, expr: str, shape: tuple[int, ...], nonneg: bool = False) -> None:
        self.tensors.append((expr, shape))
        if nonneg:
            self.nonneg.add(expr)

    # one layer after another: `src >> conv >> bn >> relu`
    def layer(self, shape: tuple[int, ...], label: bool = True) -> tuple[str, tuple[int, ...]]:
        """One op (labelled when it has parameters and `label`) and the shape it makes."""
        draw = self.draw
        if len(shape) == 3:
            kinds = ["conv", "conv", "bn", "relu", "relu", "relu6", "sigmoid", "identity",
                     "flatten", "reshape", "gap"]
        else:
            kinds = ["bn", "relu", "relu", "relu6", "sigmoid", "identity", "reshape"]
        kind = draw(st.sampled_from(kinds))
        if kind == "conv":
            out, k = draw(st.sampled_from([2, 3, 4, 6, 8])), draw(st.sampled_from([1, 3]))
            return f"{self.label('c') + ': ' if label else ''}conv({out}, {k})", (out, *shape[1:])
        if kind == "bn":
            return f"{self.label('b') + ': ' if label else ''}bn", shape
        if kind == "flatten":
            return "flatten", (math.prod(shape),)
        if kind == "gap":
            return "gap", (shape[0], 1, 1)
        if kind == "reshape":
            target = draw(st.sampled_from(reshape_targets(math.prod(shape))))
            return f"reshape([{', '.join(map(str, target))}])", target
        return kind, shape

    def stage(self, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        """A layer, a named list of layers, or a block."""
        kind = self.draw(st.sampled_from(["layer"] * 6 + ["list"] + ["block"] * (self.depth < 2)))
        if kind == "list":
            layers = []
            for _ in range(self.draw(st.integers(2, 4))):
                layer, shape = self.layer(shape, label=False)
                layers.append(layer)
            return f"{self.label('s')}: [{', '.join(layers)}]", shape
        if kind == "block":
            return self.block(shape)
        return self.layer(shape)

    def block(self, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        """An instance of a block for `shape` inputs: one written before, or a new one."""
        fitting = [b for b in self.blocks if b[1] == shape]
        if fitting and self.draw(st.booleans()):
            name, _, out, _ = self.draw(st.sampled_from(fitting))
        else:
            body = _SpecWriter(self.draw, "in", shape, self.blocks, self.depth + 1)
            for _ in range(self.draw(st.integers(2, 5))):
                body.statement()
            name = f"B{len(self.blocks) + 1}"
            out = body.finish()
            text = f"block {name}() {{\n" + "\n".join(body.lines) + "\n}\n"
            self.blocks.append((name, shape, out, text))
        return f"{self.label('u')}: {name}", out

    def chain(self, src: str, shape: tuple[int, ...], min_stages: int = 1,
              max_stages: int = 3) -> tuple[str, tuple[int, ...]]:
        parts = [src]
        for _ in range(self.draw(st.integers(min_stages, max_stages))):
            layer, shape = self.stage(shape)
            parts.append(layer)
        return " >> ".join(parts), shape

    def operand_like(self, shape: tuple[int, ...], fallback: str) -> str:
        """An expression that combines elementwise with a `shape` tensor: an existing tensor
        of that shape (else `fallback`), one adapted by a 1x1 conv, or (for maps) a gate
        `[C, 1, 1]` that broadcasts."""
        draw = self.draw
        if len(shape) == 1:
            found = self.pick(lambda s: s == shape)
            return found[0] if found else fallback
        c, h, w = shape
        how = draw(st.sampled_from(["same", "same", "adapt", "gate", "gate"]))
        if how == "same":
            found = self.pick(lambda s: s == shape)
            if found:
                return found[0]
        if how in ("same", "adapt"):
            found = self.pick(lambda s: len(s) == 3 and s[1:] == (h, w))
            if found:
                if found[1] == shape:
                    return found[0]
                return f"({found[0]} >> {self.label('c')}: conv({c}, 1))"
        found = self.pick(lambda s: len(s) == 3)
        gate = f"{found[0]} >> gap"
        if found[1][0] != c or draw(st.booleans()):  # a conv's gate may be overwritten
            gate += f" >> {self.label('c')}: conv({c}, 1)"
        if not draw(st.integers(0, 2)):
            gate += " >> sigmoid"
        return f"({gate})"

    # statements
    def statement(self) -> None:
        draw = self.draw
        kinds = ["chain", "chain", "chain", "binary", "binary", "cat", "view", "activation"]
        if any(len(s) == 3 and s[0] % 2 == 0 for _, s in self.tensors):
            kinds.append("split")
        kind = draw(st.sampled_from(kinds))
        getattr(self, f"_{kind}")()

    def _view(self) -> None:
        """A view of a tensor (or the tensor itself), read later while the tensor may be
        overwritten by an in-place op."""
        src, shape = self.pick()
        nonneg = src in self.nonneg
        kinds = ["identity", "reshape"] + ["flatten"] * (len(shape) == 3)
        kind = self.draw(st.sampled_from(kinds))
        if kind == "reshape":
            shape = self.draw(st.sampled_from(reshape_targets(math.prod(shape))))
            kind = f"reshape([{', '.join(map(str, shape))}])"
        elif kind == "flatten":
            shape = (math.prod(shape),)
        target = self.name()
        self.lines.append(f"  {target} = {src} >> {kind}")
        self.add(target, shape, nonneg)

    def _activation(self) -> None:
        """An in-place candidate on a tensor that others may read (mostly one that may hold
        negative values, so that overwriting it shows)."""
        signed = [t for t in self.tensors if t[0] not in self.nonneg]
        if signed and self.draw(st.integers(0, 3)):
            pool = signed[-1:] if self.draw(st.booleans()) else signed
            src, shape = self.draw(st.sampled_from(pool))
            self.used.add(src)
        else:
            src, shape = self.pick()
        act = self.draw(st.sampled_from(["relu", "relu", "relu6"]))
        target = self.name()
        self.lines.append(f"  {target} = " + (f"{act}({src})" if self.draw(st.booleans())
                                              else f"{src} >> {act}"))
        self.add(target, shape, nonneg=True)

    def _chain(self, first: str | None = None) -> None:
        """`t = src >> layers`; `first`: the input read once, by these first layers."""
        if first is None:
            src, shape = self.pick()
        else:
            src, shape = self.tensors[0]
            self.used.add(src)
            if "flatten" in first:
                shape = (math.prod(shape),)
            src = f"{src} >> {first}" if first else src
        expr, shape = self.chain(src, shape)
        target = self.name()
        self.lines.append(f"  {target} = {expr}")
        self.add(target, shape, _nonneg_after(expr.split(" >> ")[1:], src in self.nonneg))

    def _binary(self) -> None:
        draw = self.draw
        a, shape = self.pick()
        if draw(st.booleans()):  # the left operand made on the spot: `(a >> conv >> bn)`
            a, shape = self.chain(a, shape, 1, 2)
            a = f"({a})"
            if not any(s == shape for _, s in self.tensors):  # `a` may be its own partner:
                target = self.name()                        # bind it, not repeat its labels
                self.lines.append(f"  {target} = {a[1:-1]}")
                self.add(target, shape)
                self.used.add(target)
                a = target
        b = self.operand_like(shape, fallback=a)
        op = draw(st.sampled_from(["+", "+", "*"]))
        left, right = (a, b) if draw(st.booleans()) else (b, a)  # b may be a gate: either side
        expr = f"{left} {op} {right}"
        after = draw(st.sampled_from(["", "", "call", "chain"]))
        if after == "call":
            expr = f"relu({expr})"
        elif after == "chain":
            expr = f"({expr}) >> relu"
        target = self.name()
        self.lines.append(f"  {target} = {expr}")
        self.add(target, shape, nonneg=bool(after))

    def _cat(self) -> None:
        a, shape = self.pick()
        if len(shape) == 3:
            others = [t for t in self.tensors if len(t[1]) == 3 and t[1][1:] == shape[1:]]
        else:
            others = [t for t in self.tensors if len(t[1]) == 1]
        more = self.draw(st.lists(st.sampled_from(others), min_size=1, max_size=2))
        self.used.update(e for e, _ in more)
        exprs = [a] + [e for e, _ in more]
        shapes = [shape] + [s for _, s in more]
        out = (sum(s[0] for s in shapes), *shape[1:])
        target = self.name()
        self.lines.append(f"  {target} = cat({', '.join(exprs)})")
        self.add(target, out, all(e in self.nonneg for e in exprs))

    def _split(self) -> None:
        src, (c, h, w) = self.pick(lambda s: len(s) == 3 and s[0] % 2 == 0)
        part = (c // 2, h, w)
        if self.draw(st.booleans()):
            first, second = self.name(), self.name()
            self.lines.append(f"  {first}, {second} = split({src}, 2)")
        else:
            parts = self.name("p")
            self.lines.append(f"  {parts} = split({src}, 2)")
            first, second = f"{parts}[0]", f"{parts}[1]"
        self.add(first, part, src in self.nonneg)
        self.add(second, part, src in self.nonneg)

    def finish(self) -> tuple[int, ...]:
        """`out`: every tensor nobody read, and some that were read, so many values are live
        at the end (each map flattened, then all concatenated). Returns the output shape."""
        tail = [t for t in self.tensors if t[0] != self.input and t[0] not in self.used]
        reread = [t for t in self.tensors if t[0] in self.used]
        if reread:
            tail += self.draw(st.lists(st.sampled_from(reread), max_size=3, unique=True))
        tail = tail or [self.tensors[-1]]
        if len(tail) == 1:
            self.lines.append(f"  out {tail[0][0]}")
            return tail[0][1]
        exprs = [f"{e} >> flatten" if len(s) == 3 else e for e, s in tail]
        self.lines.append(f"  out cat({', '.join(exprs)})")
        return (sum(math.prod(s) for _, s in tail),)


def _nonneg_after(layers: list[str], nonneg: bool) -> bool:
    """Whether a tensor holds no negative value after `layers` (views keep what it was)."""
    for layer in layers:
        if layer.startswith("s") and ": [" in layer:  # a named list
            nonneg = _nonneg_after(layer.split(": [", 1)[1].rstrip("]").split(", "), nonneg)
        elif layer.startswith(("relu", "sigmoid")):
            nonneg = True
        elif layer.startswith(("conv", "bn")) or ": " in layer:  # a layer or a block
            nonneg = False
    return nonneg


def reshape_targets(size: int) -> list[tuple[int, ...]]:
    """Shapes with `size` values: the vector, and maps of at most 32 channels and 8x8."""
    targets = [(size,)]
    for h in range(1, 9):
        for w in range(1, 9):
            if size % (h * w) == 0 and size // (h * w) <= 32:
                targets.append((size // (h * w), h, w))
    return targets


@st.composite
def random_specs(draw) -> tuple[str, tuple[int, int, int]]:
    """A spec text (a net, and the blocks it uses) and its input shape."""
    shape = (draw(st.integers(2, 6)), draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    blocks: list = []
    net = _SpecWriter(draw, "x", shape, blocks)
    for _ in range(draw(st.integers(4, 12))):
        net.statement()
    net.finish()
    lines = [f"  input x: [{', '.join(map(str, shape))}]", *net.lines]
    text = "".join(b[3] + "\n" for b in blocks) + "net Random() {\n" + "\n".join(lines) + "\n}\n"
    return text, shape


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inplace")


_specs = itertools.count()


def write_spec(directory: Path, text: str) -> Path:
    path = directory / f"random{next(_specs)}.net"
    path.write_text(text, encoding="utf-8")
    return path


@INPLACE_SETTINGS
@given(case=random_specs())
def test_inplace_lowering_matches_the_naive_one(case, workdir):
    text, input_shape = case
    note(text)
    path = write_spec(workdir, text)
    problems = [d for d in netc.check(path) if d.is_error]
    assume(not problems)
    check_spec(path, input_shape)


def test_random_specs_are_mostly_valid(workdir):
    """The generator tracks shapes: (nearly) every spec it writes checks, so the property
    test above is not spending its examples on rejected specs."""
    found = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=random_specs())
    def collect(case):
        found.append(case[0])

    collect()
    invalid = [t for t in found if any(d.is_error for d in netc.check(write_spec(workdir, t)))]
    assert len(invalid) <= len(found) // 10, invalid[:3]


# -- regressions ---------------------------------------------------------------------------

def spec(tmp_path: Path, text: str, name: str = "t.net") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# `z` reads `y` through a view (or is `y`); the ReLU of `y` must not overwrite it
VIEW_THEN_RELU = {
    "flatten": "z = y >> flatten",
    "identity": "z = y >> identity >> flatten",
    "reshape": "z = y >> reshape([288])",
    "reshape-map": "z = y >> reshape([2, 12, 12]) >> flatten",
    "split": "a, b = split(y, 2)\n  z = cat(a >> flatten, b >> flatten)",
    "split-list": "parts = split(y, 2)\n  z = parts[1] >> flatten",
}


@pytest.mark.parametrize("view", VIEW_THEN_RELU, ids=list(VIEW_THEN_RELU))
def test_relu_is_not_in_place_while_a_view_of_its_input_is_live(tmp_path, view):
    path = spec(tmp_path, f"""
        net M() {{
          input x: [4, 6, 6]
          y = x >> c1: conv(8, 3)
          {VIEW_THEN_RELU[view]}
          r = y >> relu
          out cat(z, r >> flatten)
        }}
    """)
    check_spec(path, (4, 6, 6))


@pytest.mark.parametrize("text", [
    # the ReLU's input is saved for backward by a conv / a mul that read it earlier
    "y = x >> c1: conv(8, 3) >> b1: bn\n  z = y >> c2: conv(4, 1)\n  r = y >> relu\n"
    "  out cat(z >> flatten, r >> flatten)",
    "y = x >> c1: conv(4, 3)\n  z = y * x\n  r = y >> relu\n  out cat(z >> flatten, r >> flatten)",
    # residual adds: neither operand may be overwritten while still read, least of all `x`
    "y = x >> c1: conv(4, 3)\n  s = relu(y + x)\n  out cat(s >> flatten, y >> flatten)",
    "y = x >> c1: conv(4, 3)\n  s = relu(x + y)\n  out cat(s >> flatten, x >> flatten)",
    # a gate `[C, 1, 1]` first: the add broadcasts, so it cannot run in place into the gate
    "y = x >> c1: conv(4, 3)\n  g = x >> gap >> c2: conv(4, 1)\n  s = (g + y) >> relu\n  out s",
    "y = x >> c1: conv(4, 3)\n  a, b = split(y, 2)\n  s = relu(a + b)\n"
    "  out cat(s >> flatten, y >> flatten)",
], ids=["conv-saved", "mul-saved", "residual-then-read", "residual-onto-input", "gate-plus-map",
        "split-parts-added"])
def test_saved_and_residual_values_are_not_overwritten(tmp_path, text):
    body = textwrap.indent(text, "  ").lstrip()
    check_spec(spec(tmp_path, f"net M() {{\n  input x: [4, 6, 6]\n  {body}\n}}\n"), (4, 6, 6))


@pytest.mark.parametrize("text", [
    "out x >> relu >> c1: conv(4, 3)",
    "out x >> flatten >> relu",
    "out x >> identity >> relu6 >> c1: conv(4, 1)",
    "a, b = split(x, 2)\n  out cat(a >> relu, b)",
    "out (x + (x >> c1: conv(4, 1))) >> relu",
], ids=["relu", "relu-of-a-view", "relu6-of-identity", "relu-of-a-split-part", "add-into-input"])
def test_the_callers_input_is_never_overwritten(tmp_path, text):
    """The input is read once: nothing else needs it, but it is the caller's tensor."""
    body = textwrap.indent(text, "  ").lstrip()
    check_spec(spec(tmp_path, f"net M() {{\n  input x: [4, 6, 6]\n  {body}\n}}\n"), (4, 6, 6))


@pytest.mark.parametrize("text", [
    "block B() { out in >> relu >> c1: conv(4, 3) }\n"
    "net M() {\n  input x: [4, 6, 6]\n  out x >> c0: conv(4, 3) >> u1: B\n}\n",
    "block B() { out (in + (in >> c1: conv(4, 1))) >> relu }\n"
    "net M() {\n  input x: [4, 6, 6]\n  out x >> c0: conv(4, 3) >> u1: B\n}\n",
    "net M() {\n  input x: [4, 6, 6]\n  out x >> c0: conv(4, 3) >> s1: [relu, conv(4, 3)]\n}\n",
], ids=["block", "block-residual", "sequence"])
def test_a_submodule_never_overwrites_its_callers_tensor(tmp_path, text):
    """Nobody else reads the block's input in the net, but a block may be called on its own."""
    check_spec(spec(tmp_path, text), (4, 6, 6))


def test_resnet18_keeps_its_in_place_relus():
    """The optimisation must not silently disappear: resnet18's generated code runs ReLUs in
    place, in the stem (conv -> bn -> relu) and in its blocks (after bn1, after the add)."""
    src = netc.generate_source(ROOT / "specs" / "resnet18.net").src
    inplace_relus = re.findall(r"\brelu6?\(\w+, inplace=True\)|ReLU6?\(inplace=True\)|\.relu_\(\)",
                               src)
    assert len(inplace_relus) >= 3, f"only {len(inplace_relus)} in-place ReLUs:\n{src}"


# -- the checker itself -------------------------------------------------------------------------

UNSAFE = {
    # a view of `y` is read after the ReLU overwrote `y`
    "view": ("net M() {\n  input x: [4, 6, 6]\n  y = x >> c1: conv(8, 3)\n  z = y >> flatten\n"
             "  r = y >> relu\n  out cat(z, r >> flatten)\n}\n", "outputs differ"),
    # conv c2 saved `y` for its backward
    "saved": ("net M() {\n  input x: [4, 6, 6]\n  y = x >> c1: conv(8, 3)\n"
              "  z = y >> c2: conv(4, 1)\n  r = y >> relu\n"
              "  out cat(z >> flatten, r >> flatten)\n}\n", "backward raised"),
    # the net's input (a leaf that requires grad)
    "input": ("net M() {\n  input x: [4, 6, 6]\n  out x >> relu >> c1: conv(4, 3)\n}\n",
              "forward raised"),
    # a block's input, which the block's caller passed in
    "block": ("block B() { out in >> relu >> c1: conv(4, 3) }\n"
              "net M() {\n  input x: [4, 6, 6]\n  out x >> c0: conv(4, 3) >> u1: B\n}\n",
              "overwrote their callers' tensors"),
    "sequence": ("net M() {\n  input x: [4, 6, 6]\n"
                 "  out x >> c0: conv(4, 3) >> s1: [relu, conv(4, 3)]\n}\n",
                 "overwrote their callers' tensors"),
}


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_the_checker_catches_an_unsafe_inplace_relu(tmp_path, case):
    """Run every ReLU of the naive lowering in place, by editing its source: the comparison
    must fail, and say why (so a passing run above means something)."""
    text, why = UNSAFE[case]
    _, naive = lowerings(spec(tmp_path, text))
    unsafe_src, replaced = re.subn(r"\b(?:F\.relu|torch\.relu)\((\w+)\)",
                                   r"F.relu(\1, inplace=True)", naive.src)
    unsafe_src, layers = re.subn(r"\bnn\.ReLU\(\)", "nn.ReLU(inplace=True)", unsafe_src)
    assert replaced + layers == 1, f"the naive ReLU is spelled otherwise; update this:\n{naive.src}"
    unsafe = PythonCode(unsafe_src, naive.class_name, naive.variables)
    with pytest.raises(AssertionError, match=re.escape(why)):
        assert_same_behaviour(*modules(unsafe, naive), (4, 6, 6))
