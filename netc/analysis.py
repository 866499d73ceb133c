"""analyse: what a network costs and sees, computed from the typed graph alone (no torch).

Per node (`analyse(graph).nodes`): output shape, parameters, buffers, MACs, elementwise
operations, activation elements, and the receptive field with its effective stride (jump).
Per network: totals, memory at a batch size, and the minimum input size.

Counting conventions:

- **MACs** are counted as `torch.utils.flop_counter.FlopCounterMode` counts FLOPs / 2:
  convolutions and matmuls only, bias excluded. Normalisation, activations and pooling
  count 0, exactly as in the reference figures (`tests/reference/models.json`).
- **Elementwise** operations are the adds and multiplies that merge tensors: residual adds,
  `sum(parts)`, attention gates (`x * gate`). An n-operand add or multiply costs
  (n - 1) x output elements. They are *not* in the MACs; torchinfo, fvcore and ptflops drop
  them silently, netc reports them on their own line.
- **Activations** are output elements per sample; views (`flatten`, `split`, `getitem`,
  `identity`) share their input's storage and count 0. Activation memory is their sum x
  batch x 4 bytes: what a training step keeps for the backward pass (an upper bound, as in
  torchinfo's "forward/backward pass size").

Receptive fields follow the source documents' recurrence `RF_i = (RF_{i+1} - 1) * s_i + k_i`,
run forwards and with positions kept: along each axis, output pixel `i` of a node sees input
pixels `[i * jump + start, i * jump + stop]` (`start < 0` reaches into the padding), and a
layer with kernel k, stride s, padding p and dilation d maps `(jump, start, stop)` to
`(jump * s, start - p * jump, stop + (d * (k - 1) - p) * jump)`. On a DAG, where paths
meet (add, multiply, concat) the fields are united — the largest field over all paths, and
exactly what the gradient of one output pixel touches. Three variants per node:

- `rf`: every path. After global pooling, `flatten` of a map, or a gate computed from those
  (SE, SK, split attention), a node sees its whole input: `GLOBAL`.
- `rf_local`: spatial paths only; gate operands that are `GLOBAL` are left out where paths
  meet. This is the figure people compute by hand for an attention network (for plain
  ResNets it equals `rf`: the shortcuts skip convolutions, so the path through every 3x3
  conv is the largest).
- `rf_min`: the shortest path (through the identity shortcuts); the smallest field.

The minimum input size is found with the ops' own shape rules (`OpSpec.infer`), re-run on
the graph at other input sizes: the smallest height and width for which every shape is
valid, the step between valid sizes, and whether one built model accepts them all (it does
unless a parameter shape depends on the size, as a `linear` after `flatten` does). The
graph is re-typed, not re-elaborated: a spec whose *structure* depends on its input size
(`if in.h > 7`) is analysed with the structure it has at its declared size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from netc.ir import Graph, Node
from netc.ops import OPS, REORDERING_OPS, Cost, conv_padding
from netc.shapes import Multi, ShapeError, pair

FLOAT_BYTES = 4
VIEW_OPS = {"flatten", "split", "getitem", "identity"}  # outputs share the input's storage
ELEMENTWISE_OPS = {"add", "mul"}
MERGE_OPS = {"add", "mul", "cat"}
# ops whose output pixel sees exactly its input pixel (per-position or per-channel)
PASS_THROUGH = {"relu", "relu6", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid",
                "leaky_relu", "identity", "dropout", "bn", "radix_softmax", "split", "getitem"}
MAX_PERIOD = 1024  # sizes are checked over one period of the size pattern, capped here
# The minimum-input search re-types the graph once per input size it tries ("a probe"). Its
# work is bounded per axis: at most MAX_PROBES sizes, and at most PROBE_NODE_BUDGET shape
# rules in all (fewer sizes for a larger graph; never fewer than MIN_PROBES). The walk up
# from where sizes stop collapsing tries at most 2 periods + SMALLEST_WINDOW sizes; a net
# whose smallest valid size lies beyond that (a reshape pins the size) is reported as "not
# searched" below its declared size rather than walked to (2^20 sizes took 20 s).
MAX_PROBES = 2048
MIN_PROBES = 16
PROBE_NODE_BUDGET = 400_000
SMALLEST_WINDOW = 64


@dataclass(frozen=True)
class Totals:
    params: int
    buffers: int  # state_dict elements that are not parameters, num_batches_tracked included
    macs: int


def node_cost(graph: Graph, node_id: str) -> Cost:
    node = graph.node(node_id)
    if node.op == "input":
        return Cost()
    ins = [graph.node(i).shape for i in node.inputs]
    return OPS[node.op].cost(node.args, ins, node.shape)


def totals(graph: Graph) -> Totals:
    costs = [node_cost(graph, node.id) for node in graph]
    return Totals(sum(c.params for c in costs), sum(c.buffers for c in costs),
                  sum(c.macs for c in costs))


def human(count: float) -> str:
    """3 significant figures with K/M/G, as people quote model sizes."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.3g} {unit}"
    return str(count)


# ---- receptive fields

class _Global:
    """The field of a node that sees its whole input, whatever the input's size."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "GLOBAL"

    def __reduce__(self):
        return (_Global, ())


GLOBAL = _Global()


@dataclass(frozen=True)
class Field:
    """What one output pixel sees along one axis: output pixel `i` sees input pixels
    `[i * jump + start, i * jump + stop]`."""

    jump: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start + 1

    def then(self, kernel: int, stride: int, padding: int, dilation: int = 1) -> Field:
        """The field after a sliding window (conv or pooling) with these arguments."""
        return Field(self.jump * stride, self.start - padding * self.jump,
                     self.stop + (dilation * (kernel - 1) - padding) * self.jump)

    def union(self, other: Field) -> Field:
        return Field(max(self.jump, other.jump), min(self.start, other.start),
                     max(self.stop, other.stop))


def _spatial(shape) -> tuple[int, int] | None:
    if isinstance(shape, tuple) and not isinstance(shape, Multi) and len(shape) == 3:
        return shape[1], shape[2]
    return None


def _window(fields, kernel, stride, padding, dilation=1):
    return tuple(f.then(k, s, p, d) for f, k, s, p, d in
                 zip(fields, pair(kernel), pair(stride), pair(padding), pair(dilation)))


def _adaptive(fields, in_shape, output_size):
    """Adaptive pooling from n to o: windows of n / o when o divides n; otherwise windows
    of up to ceil((i + 1) n / o) - floor(i n / o) at about n / o apart (an upper bound)."""
    sizes = _spatial(in_shape)
    outs = pair(output_size)
    result = []
    for f, n, o in zip(fields, sizes, outs):
        if n % o == 0:
            result.append(f.then(n // o, n // o, 0))
        else:
            kernel = max(-(-(i + 1) * n // o) - (i * n // o) for i in range(o))
            result.append(f.then(kernel, -(-n // o), 0))
    return tuple(result)


def _mixes_whole_map(shape) -> bool:
    """Whether collapsing this map mixes several positions (a 1x1 map has only one)."""
    sizes = _spatial(shape)
    return sizes is not None and sizes != (1, 1)


def _merge(ins: list, how: str):
    if any(f is None for f in ins):
        return None
    finite = [f for f in ins if f is not GLOBAL]
    if how == "all":
        if len(finite) < len(ins):
            return GLOBAL
    if not finite:
        return GLOBAL
    if how == "min":
        return tuple(min((f[axis] for f in finite), key=lambda x: (x.size, x.jump))
                     for axis in (0, 1))
    result = finite[0]
    for f in finite[1:]:
        result = (result[0].union(f[0]), result[1].union(f[1]))
    return result


def _field_rule(node: Node, ins: list, in_shapes: list, how: str):
    """The field of a node's output from its inputs' fields (`how`: all / local / min)."""
    op, args = node.op, node.args
    if op == "input":
        if _spatial(node.shape) is None:
            return None
        return (Field(1, 0, 0), Field(1, 0, 0))
    if not ins or op in REORDERING_OPS or (op == "layer_norm" and args["dim"] % len(node.shape)):
        # a learnable tensor has no field; dims moved about (tokens, channels-last maps) are
        # no longer [C, H, W]: no claim (a channels-last LayerNorm is caught here too)
        return None
    first = ins[0]
    if first is None or (first is GLOBAL and op not in MERGE_OPS):
        return first
    if op == "conv":
        return _window(first, args["kernel_size"], args["stride"], conv_padding(args),
                       args["dilation"])
    if op in ("maxpool", "avgpool"):
        stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
        return _window(first, args["kernel_size"], stride, args["padding"],
                       args.get("dilation", 1))
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        if pair(args["output_size"]) == (1, 1) and _mixes_whole_map(in_shapes[0]):
            return GLOBAL
        return _adaptive(first, in_shapes[0], args["output_size"])
    if op in ("gap", "gmp", "flatten"):
        return GLOBAL if _mixes_whole_map(in_shapes[0]) else first
    if op == "linear":  # acts on the last axis: on a map, the width
        sizes = _spatial(in_shapes[0])
        return GLOBAL if sizes is not None and sizes[1] > 1 else first
    if op == "softmax":
        sizes = _spatial(in_shapes[0])
        dim = args["dim"] % 3 if sizes is not None else 0
        return GLOBAL if dim in (1, 2) and sizes[dim - 1] > 1 else first
    if op in ("add", "mul"):
        out = _spatial(node.shape)
        # an operand broadcast over the map (a [C, 1, 1] gate) is the same at every position
        ins = [GLOBAL if f is not None and out and _spatial(s) != out and out != (1, 1)
               else f for f, s in zip(ins, in_shapes)]
        return _merge(ins, how)
    if op == "cat":
        return _merge(ins, how)
    if op == "reshape":  # a vector (or 1x1 map) as a [C, 1, 1] gate keeps its single field
        if _spatial(in_shapes[0]) is not None and _spatial(in_shapes[0]) == _spatial(node.shape):
            return first
        return GLOBAL if _mixes_whole_map(in_shapes[0]) else first
    if op in PASS_THROUGH or _spatial(in_shapes[0]) == _spatial(node.shape):
        return first  # channel-wise or elementwise: activations, bn, dropout, split, getitem
    return None  # an op this analysis does not know that changes the map: no claim


def receptive_fields(graph: Graph, how: str = "all") -> dict[str, object]:
    """Every node's field (see the module docstring); `how` is "all", "local" or "min"."""
    fields: dict[str, object] = {}
    for node in graph:
        ins = [fields[i] for i in node.inputs]
        in_shapes = [graph.node(i).shape for i in node.inputs]
        fields[node.id] = _field_rule(node, ins, in_shapes, how)
    return fields


def field_along(graph: Graph, path: Iterable[str]):
    """The field at the end of one path (node ids, each feeding the next, from an input):
    the hand computation along a chosen path, ignoring every other path."""
    fields = None
    previous = None
    for node_id in path:
        node = graph.node(node_id)
        if previous is not None:
            assert previous in node.inputs, f"{previous} does not feed {node_id}"
            in_shapes = [graph.node(previous).shape]
            if node.op in ("add", "mul", "cat"):
                fields = _field_rule(node, [fields], in_shapes, "all") if \
                    _spatial(in_shapes[0]) == _spatial(node.shape) else GLOBAL
            else:
                fields = _field_rule(node, [fields], in_shapes, "all")
        else:
            assert node.op == "input", "a path starts at an input"
            fields = _field_rule(node, [], [], "all")
        previous = node_id
    return fields


# ---- per-node statistics

@dataclass(frozen=True)
class NodeStats:
    """One node's numbers. `rf`, `jump` and `rf_start` are (height, width); `rf` is GLOBAL
    for a node that sees its whole input and None where the net has no spatial input.
    `jump` (the effective stride) and `rf_start` (where output pixel 0's field starts) are
    those of the spatial paths, as `rf_local`; None after global pooling."""

    id: str
    op: str
    scope: tuple[str, ...]
    module: str | None
    inputs: tuple[str, ...]
    shape: object
    params: int
    buffers: int
    macs: int
    elementwise: int
    activations: int
    rf: object
    jump: tuple[int, int] | None
    rf_start: tuple[int, int] | None
    rf_local: object
    rf_min: object
    buffer_bytes: int = 0

    @property
    def name(self) -> str:
        return self.id

    @property
    def rf_global(self) -> bool:
        return self.rf is GLOBAL


def _sizes(fields):
    if fields is None or fields is GLOBAL:
        return fields
    return (fields[0].size, fields[1].size)


def _elements(shape) -> int:
    if shape is None:
        return 0
    if isinstance(shape, Multi):
        return sum(_elements(s) for s in shape)
    return math.prod(shape)


def _buffer_bytes(node: Node, cost: Cost) -> int:
    return (cost.buffers - cost.int64_buffers) * FLOAT_BYTES + cost.int64_buffers * 8


def node_stats(graph: Graph) -> list[NodeStats]:
    """Every node's numbers, in topological (source) order."""
    everything = receptive_fields(graph, "all")
    local = receptive_fields(graph, "local")
    shortest = receptive_fields(graph, "min")
    result = []
    for node in graph:
        cost = node_cost(graph, node.id)
        elementwise = (len(node.inputs) - 1) * _elements(node.shape) \
            if node.op in ELEMENTWISE_OPS else 0
        activations = 0 if node.op in VIEW_OPS or node.op == "input" else _elements(node.shape)
        # jump and position come from the spatial paths (equal to every path's where the
        # field is finite): a gated map keeps its stride even though it sees everything
        fields = local[node.id]
        finite = fields is not None and fields is not GLOBAL
        result.append(NodeStats(
            id=node.id, op=node.op, scope=node.scope, module=node.module, inputs=node.inputs,
            shape=node.shape, params=cost.params, buffers=cost.buffers, macs=cost.macs,
            elementwise=elementwise, activations=activations, rf=_sizes(everything[node.id]),
            jump=(fields[0].jump, fields[1].jump) if finite else None,
            rf_start=(fields[0].start, fields[1].start) if finite else None,
            rf_local=_sizes(local[node.id]), rf_min=_sizes(shortest[node.id]),
            buffer_bytes=_buffer_bytes(node, cost)))
    return result


# ---- the minimum input size

@dataclass(frozen=True)
class AxisSizes:
    """The valid sizes along one axis: `min`, then `regular`, `regular + step`,
    `regular + 2 * step`, ... (`regular` is `min` unless a size of 1 broadcasts by coincidence
    at the smallest sizes; when `only_steps` is False, some sizes between the steps are valid
    too; `step` 0: no regular pattern);
    `model` is the range of sizes the model built at the declared size accepts
    (`(lo, None)`: every valid size >= lo)."""

    min: int
    step: int
    only_steps: bool
    model: tuple[int, int | None]
    declared: int
    regular: int  # where the steps start (after `min`, small sizes may be exceptions)
    early: tuple[int, ...] = ()  # the valid sizes below `regular`
    # False when the search ran out of its budget (see MAX_PROBES): `min` is then the
    # declared size, and smaller valid sizes may exist
    searched: bool = True

    def text(self) -> str:
        steps = f"from {self.regular} in steps of {self.step}" if self.step > 1 else \
            f"any from {self.regular}"
        return ", ".join(map(str, self.early)) + ", then " + steps if self.early else steps


@dataclass(frozen=True)
class MinInput:
    """The smallest input for which every shape is valid (see the module docstring)."""

    input: str  # the input's name
    shape: tuple[int, ...]  # (C, H_min, W_min)
    height: AxisSizes
    width: AxisSizes
    resized: str | None = None  # the first layer whose parameters depend on the input size

    @property
    def any_size(self) -> bool:
        """One built model takes every valid size (no parameter shape depends on it)."""
        return self.height.model[1] is None and self.width.model[1] is None

    def describe(self) -> str:
        h, w = self.height, self.width
        if not (h.searched and w.searched):
            return (f"not searched: {h.min}x{w.min} (the declared size) is valid; smaller "
                    f"sizes were not all tried (the search is bounded; a layer pins the size)")
        if 0 in (h.step, w.step):
            return (f"{h.min}x{w.min}; no regular pattern of larger sizes (a layer pins the "
                    f"input size)")
        steps = "" if (h.step, w.step) == (1, 1) else (
            f" in steps of {h.step}" if h.step == w.step else
            f" in steps of {h.step} (height) and {w.step} (width)")
        if not (h.only_steps and w.only_steps):
            steps += " (and some sizes between)"
        if h.early or w.early:
            sizes = h.text() if h.text() == w.text() else f"{h.text()} (height), {w.text()} (width)"
            steps = f": {sizes}"
        if self.any_size:
            return f"any size >= {h.min}x{w.min}{steps}"
        model = f"{_range(h.model)} x {_range(w.model)}"
        why = f"`{self.resized}` depends on the input size" if self.resized else \
            "parameter shapes depend on the input size"
        return (f"{h.min}x{w.min}{steps} when rebuilt at that size ({why}); the model built "
                f"at {h.declared}x{w.declared} takes {model}")


def _range(bounds: tuple[int, int | None]) -> str:
    lo, hi = bounds
    if hi is None:
        return f">= {lo}"
    return str(lo) if lo == hi else f"{lo}-{hi}"


class _OutOfBudget(Exception):
    """The minimum-input search tried as many sizes as it may (see MAX_PROBES)."""


@dataclass(frozen=True)
class _Failed:
    """A shape rule's objection, remembered like a shape."""
    code: str


class _Prober:
    """Re-types the graph with another input size, using the ops' own shape rules."""

    COLLAPSE = {"E303", "E313"}  # a size fell below 1: monotone in the input size

    def __init__(self, graph: Graph, input_id: str):
        self.order = graph.topo_order()
        self.input_id = input_id
        self.declared = graph.node(input_id).shape
        # other inputs of the same height and width (a pair of images) vary with the first
        self.together = {n.id for n in self.order if n.op == "input"
                         and _spatial(n.shape) == _spatial(self.declared)}
        self.param_nodes = [n for n in self.order if n.op != "input" and OPS[n.op].has_module]
        self.cache: dict[tuple, tuple[str | None, dict | None]] = {}
        # a node's shape rule is a pure function of its input shapes, and nearby input sizes
        # meet the same shapes after a few strides: (node, input shapes) -> shape or error
        self.outputs: dict[tuple, object] = {}
        self.budget = max(MIN_PROBES, min(MAX_PROBES, PROBE_NODE_BUDGET // max(1, len(self.order))))
        self.probes = 0

    def fresh_budget(self) -> None:
        """Each axis gets its own budget of new sizes to try."""
        self.probes = 0

    def shapes(self, shape: tuple[int, ...]) -> tuple[str | None, dict | None]:
        """(None, shapes) if every shape is valid, else (error code, None)."""
        if shape in self.cache:
            return self.cache[shape]
        if self.probes >= self.budget:
            raise _OutOfBudget()
        self.probes += 1
        shapes: dict[str, object] = {}
        result: tuple[str | None, dict | None] = (None, shapes)
        for node in self.order:
            if node.op == "input":
                shapes[node.id] = (node.shape[0], *shape[1:]) if node.id in self.together \
                    else node.shape
                continue
            ins = [shapes[i] for i in node.inputs]
            key = (node.id, *ins)
            try:
                found = self.outputs.get(key)
            except TypeError:  # (an unhashable shape: not remembered)
                key, found = None, None
            if found is None:
                found = self._infer(node, ins)
                if key is not None:
                    self.outputs[key] = found
            if isinstance(found, _Failed):
                result = (found.code, None)
                break
            shapes[node.id] = found
        self.cache[shape] = result
        return result

    @staticmethod
    def _infer(node, ins: list):
        try:
            return OPS[node.op].infer(node.args, ins)
        except ShapeError as error:
            return _Failed(error.code)
        except (ArithmeticError, IndexError, TypeError, ValueError):
            return _Failed("E300")

    def valid(self, shape) -> bool:
        return self.shapes(shape)[0] is None

    def signature(self, shape) -> tuple:
        """The parameter shapes of the model built at this input (its constructors)."""
        _, shapes = self.shapes(shape)
        if shapes is None:
            return None
        return tuple(OPS[n.op].module(n.args, [shapes[i] for i in n.inputs])
                     for n in self.param_nodes)


def _period(graph: Graph, axis: int) -> int:
    """The input sizes' period: adding it to the input size adds a whole number to every
    size before global pooling, so validity repeats with it (lcm of the strides' products)."""
    period: dict[str, int] = {}
    result = 1
    for node in graph:
        ins = [period[i] for i in node.inputs]
        args = node.args
        if node.op == "input":
            p = 1
        elif node.op == "conv":
            p = ins[0] * pair(args["stride"])[axis]
        elif node.op in ("maxpool", "avgpool"):
            stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
            p = ins[0] * pair(stride)[axis]
        elif node.op in ("adaptive_avgpool", "adaptive_maxpool", "gap", "gmp", "reshape"):
            p = 1  # a fixed output size
        else:
            p = math.lcm(*ins) if ins else 1
        period[node.id] = min(p, MAX_PERIOD)
        result = min(math.lcm(result, period[node.id]), MAX_PERIOD)
    return result


def _axis_sizes(prober: _Prober, graph: Graph, axis: int) -> AxisSizes:
    declared = prober.declared
    default = declared[axis + 1]

    def at(n: int) -> tuple[int, ...]:
        shape = list(declared)
        shape[axis + 1] = n
        return tuple(shape)

    # Sizes only grow with the input, so "some size collapses below 1" is monotone:
    # bisect for the first input where nothing collapses, then walk up to the first valid.
    lo, hi = 1, default
    while lo < hi:
        mid = (lo + hi) // 2
        if prober.shapes(at(mid))[0] in _Prober.COLLAPSE:
            lo = mid + 1
        else:
            hi = mid
    # (Above `lo`, validity need not be monotone: walk, but only a few periods; a layer that
    # pins the size, a reshape to a fixed shape, may make the declared size the only one.)
    period = _period(graph, axis)
    window = range(lo, min(default, lo + 2 * period + SMALLEST_WINDOW) + 1)
    smallest = next((n for n in window if prober.valid(at(n))), None)
    if smallest is None:
        return _unsearched(prober, default)

    # Past the smallest sizes (where a size of 1 may broadcast by coincidence), validity
    # repeats with the period: find where that regular pattern starts, and its step.

    def repeats(n: int) -> bool:  # a whole period from n that the next period repeats
        return all(prober.valid(at(m)) == prober.valid(at(m + period))
                   for m in range(n, n + period))

    regular = next((n for n in range(smallest, smallest + 2 * period + 1)
                    if prober.valid(at(n)) and repeats(n)), None)
    if regular is not None:
        valid = [n for n in range(regular, regular + period) if prober.valid(at(n))]
        step = next(s for s in range(1, period + 1)
                    if period % s == 0 and all(prober.valid(at(n))
                                               for n in range(regular, regular + period, s)))
        only_steps = len(valid) == period // step
    else:  # no period: some layer pins the size (a reshape to a fixed shape, a declared size)
        regular, step, only_steps = smallest, 0, True

    base = prober.signature(at(default))
    early = tuple(n for n in range(smallest, regular) if prober.valid(at(n)))
    probes = (*early, regular) + ((regular + period,) if step else ())
    if all(prober.signature(at(n)) == base for n in probes):
        model = (smallest, None)
    else:
        low = default
        for n in range(default - 1, max(0, default - period - 1), -1):
            if prober.valid(at(n)):
                if prober.signature(at(n)) != base:
                    break
                low = n
        high = default
        for n in range(default + 1, default + period + 1):
            if prober.valid(at(n)):
                if prober.signature(at(n)) != base:
                    break
                high = n
        model = (low, high)
    return AxisSizes(smallest, step, only_steps, model, default, regular, early)


def _unsearched(prober: _Prober, default: int) -> AxisSizes:
    """The answer when the search ran out of budget: the declared size is valid, nothing is
    claimed about smaller ones, and the model is taken to accept only its own size."""
    return AxisSizes(default, 0, True, (default, default), default, default, (), searched=False)


def _bounded_axis_sizes(prober: _Prober, graph: Graph, axis: int) -> AxisSizes:
    prober.fresh_budget()
    try:
        return _axis_sizes(prober, graph, axis)
    except _OutOfBudget:
        return _unsearched(prober, prober.declared[axis + 1])


def _symmetric(graph: Graph) -> bool:
    """Whether height and width obey the same rules (so one axis answers for both)."""
    for node in graph:
        shape = node.shape
        if isinstance(shape, tuple) and not isinstance(shape, Multi) and len(shape) == 3 \
                and shape[1] != shape[2]:
            return False
        if node.op == "linear" and _spatial(graph.node(node.inputs[0]).shape):
            return False
        if node.op in ("cat", "softmax") and node.args["dim"] % 3 != 0:
            return False
        for key in ("kernel_size", "stride", "padding", "dilation", "output_size"):
            value = node.args.get(key)
            if isinstance(value, list) and len(set(value)) > 1:
                return False
    return True


def min_input_size(graph: Graph) -> MinInput | None:
    """The smallest input for which every shape is valid: the first feature-map input's
    height and width, with every other input of the same declared size (the others keep
    theirs)."""
    inputs = [n for n in graph if n.op == "input" and _spatial(n.shape)]
    if not inputs:
        return None
    prober = _Prober(graph, inputs[0].id)
    if not prober.valid(prober.declared):
        return None
    height = _bounded_axis_sizes(prober, graph, 0)
    width = height if _symmetric(graph) else _bounded_axis_sizes(prober, graph, 1)
    shape = (prober.declared[0], height.min, width.min)
    resized = None
    if (height.model[1], width.model[1]) != (None, None) and height.searched and width.searched:
        base, small = prober.signature(prober.declared), prober.signature(shape)
        if small is not None:
            resized = next((n.id for n, a, b in zip(prober.param_nodes, base, small) if a != b),
                           None)
    return MinInput(inputs[0].id, shape, height, width, resized)


# ---- the whole network

@dataclass(frozen=True)
class Analysis:
    """Everything `netc summary` shows, as numbers."""

    nodes: list[NodeStats]
    params: int
    buffers: int
    macs: int
    elementwise: int
    activations: int  # per sample, views excluded
    input_elements: int  # per sample
    param_bytes: int
    buffer_bytes: int
    min_input: MinInput | None
    by_id: dict[str, NodeStats] = field(repr=False, default_factory=dict)

    def activation_bytes(self, batch: int = 1) -> int:
        return self.activations * FLOAT_BYTES * batch

    def input_bytes(self, batch: int = 1) -> int:
        return self.input_elements * FLOAT_BYTES * batch

    def largest_local_field(self) -> NodeStats | None:
        """The node with the largest field through spatial paths (the field of the net
        before global pooling; every path's where no attention gate intervenes); the last
        such node on ties."""
        best = None
        for stats in self.nodes:
            if isinstance(stats.rf_local, tuple) and (
                    best is None or math.prod(stats.rf_local) >= math.prod(best.rf_local)):
                best = stats
        return best


def analyse(graph: Graph, with_min_input: bool = True) -> Analysis:
    nodes = node_stats(graph)
    params = sum(n.params for n in nodes)
    buffers = sum(n.buffers for n in nodes)
    return Analysis(
        nodes=nodes, params=params, buffers=buffers, macs=sum(n.macs for n in nodes),
        elementwise=sum(n.elementwise for n in nodes),
        activations=sum(n.activations for n in nodes),
        input_elements=sum(_elements(i.shape) for i in graph.inputs),
        param_bytes=params * FLOAT_BYTES, buffer_bytes=sum(n.buffer_bytes for n in nodes),
        min_input=min_input_size(graph) if with_min_input else None,
        by_id={n.id: n for n in nodes})


# ---- memory, before anything allocates it

def _bytes(count: float) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{int(count)} B"


@dataclass(frozen=True)
class MemoryEstimate:
    """What building (and running) the net allocates, in bytes, from the graph alone:
    parameters and buffers, and per sample the inputs and the activations (views excluded;
    an upper bound on what a forward pass holds, and what a training step keeps)."""

    param_bytes: int
    buffer_bytes: int
    input_bytes: int  # per sample
    activation_bytes: int  # per sample
    largest: str | None  # the node with the most parameters

    @property
    def model_bytes(self) -> int:
        return self.param_bytes + self.buffer_bytes

    def run_bytes(self, batch: int, train: bool = False) -> int:
        """A forward pass at this batch (a training step: gradients of the parameters too)."""
        grads = self.param_bytes if train else 0
        return self.model_bytes + grads + batch * (self.input_bytes + self.activation_bytes)


def memory_estimate(graph: Graph) -> MemoryEstimate:
    params = buffers = activations = 0
    largest, most = None, -1
    for node in graph:
        cost = node_cost(graph, node.id)
        params += cost.params
        buffers += _buffer_bytes(node, cost)
        if node.op not in VIEW_OPS and node.op != "input":
            activations += _elements(node.shape)
        if cost.params > most:
            largest, most = node.id, cost.params
    inputs = sum(_elements(i.shape) for i in graph.inputs)
    return MemoryEstimate(params * FLOAT_BYTES, buffers, inputs * FLOAT_BYTES,
                          activations * FLOAT_BYTES, largest if most > 0 else None)


def memory_limit(limits: dict | None) -> int:
    """`limits["memory"]`, else the default of `netc.elaborate.LIMITS` (`--limit memory=N`)."""
    from netc.elaborate import LIMITS

    return int({**LIMITS, **(limits or {})}["memory"])


def check_memory(graph: Graph, limits: dict | None = None, *, batch: int | None = None,
                 train: bool = False, sources=None) -> MemoryEstimate:
    """Raise NetcError (E211) when building the net, or running it at `batch`, would
    allocate more than the memory limit (`limits["memory"]`, bytes; default 4 GiB): checked
    from the graph before torch allocates anything. Returns the estimate."""
    from netc.diagnostics import Diagnostic, NetcError

    limit = memory_limit(limits)
    estimate = memory_estimate(graph)
    if batch is None:
        need, what = estimate.model_bytes, "building it allocates"
    else:
        need = estimate.run_bytes(batch, train)
        what = (f"a {'training step' if train else 'forward pass'} at batch {batch} needs "
                f"about")
    if need <= limit:
        return estimate
    parts = [f"parameters {_bytes(estimate.param_bytes)}",
             f"buffers {_bytes(estimate.buffer_bytes)}"]
    if batch is not None:
        parts += [f"inputs {_bytes(batch * estimate.input_bytes)}",
                  f"activations {_bytes(batch * estimate.activation_bytes)}"]
        if train:
            parts.append(f"gradients {_bytes(estimate.param_bytes)}")
    node = graph.node(estimate.largest) if estimate.largest else None
    if node is None or estimate.param_bytes <= limit // 2:  # activations: the net's output
        node = graph.node(graph.outputs[0]) if graph.outputs else None
    span = node.span if node is not None else None
    notes = (f"float32: {', '.join(parts)}",)
    if node is not None and node.id == estimate.largest:
        notes += (f"the largest layer is `{node.id}` "
                  f"({_bytes(node_cost(graph, node.id).params * FLOAT_BYTES)} of parameters)",)
    diagnostic = Diagnostic(
        "E211", f"{what} {_bytes(need)} ({need:,} bytes), beyond the memory limit of "
                f"{_bytes(limit)}", span, notes=notes,
        hint="raise it with `--limit memory=BYTES` (`limits={'memory': BYTES}` in "
             "netc.build) if this is intended")
    raise NetcError([diagnostic], sources)
