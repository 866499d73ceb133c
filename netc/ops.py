"""The op registry: for each primitive, its arguments, its shape rule, its cost, and the
PyTorch code it lowers to (as source text; nothing here imports torch).

Adding an op means adding one `OpSpec` to `OPS`: a parameter schema, `infer` (the shape
rule), and `module` (a constructor, for ops that own parameters) or `call` (a functional
expression, for parameter-free ops).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from netc.shapes import (Multi, Shape, ShapeError, broadcast, conv_output_size, format_shape,
                         no_lazy_form, pair, pool_output_size, size_formula)

AUTO = "auto"  # an argument whose default is computed from the others (conv padding)


@dataclass(frozen=True)
class P:
    """One argument of an op: name, kind (checked by `check_value`), default (absent: required)."""

    name: str
    kind: str
    default: Any = ...
    keyword_only: bool = False  # e.g. declared in-channels: `conv(64, 3, in_channels = 32)`

    @property
    def required(self) -> bool:
        return self.default is ...


@dataclass(frozen=True)
class Cost:
    params: int = 0
    buffers: int = 0  # state_dict elements that are not parameters (BN running stats)
    macs: int = 0
    int64_buffers: int = 0  # of `buffers`, the 8-byte integers (counters, index tables)


@dataclass(frozen=True)
class OpSpec:
    name: str
    params: tuple[P, ...]
    infer: Callable[[dict, list[Shape]], Shape]
    doc: str
    # (args, input variables, module ref, input shapes) -> the expression computing it
    call: Callable[[dict, list[str], str, list[Shape]], str]
    # constructor source, if the op owns state; `ins=None` leaves input sizes to PyTorch
    # (nn.LazyConv2d, ...), which the mutation tests use as an oracle independent of netc
    module: Callable[[dict, list[Shape] | None], str] | None = None
    cost: Callable[[dict, list[Shape], Shape], Cost] = lambda args, ins, out: Cost()
    variadic: bool = False  # takes any number (>= 2) of tensors: add, mul, cat
    # legal but suspicious uses: yields (code, message, hint) for warnings
    warnings: Callable[[dict, list[Shape]], Any] = lambda args, ins: ()
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # a parameter-free op as an `nn` layer, for where a module is needed (an item of an
    # `nn.Sequential`, as torchvision's `nn.ReLU` at `features.2`): (args, inplace) -> source
    layer: Callable[[dict, bool], str] | None = None
    # helper classes (names in HELPERS) its module or layer source uses: the generated
    # file defines them, so it stays importable without netc
    helpers: Callable[[dict], tuple[str, ...]] = lambda args: ()
    # the number of tensors it takes when not variadic: 1, or 0 for a learnable tensor
    arity: int = 1
    # its module is called as `module(x)` (so it can be an item of an nn.Sequential)
    plain_call: bool = True

    @property
    def has_module(self) -> bool:
        return self.module is not None


# ---- argument checking

_KIND_WORDS = {
    "pos": "a positive integer", "nonneg": "a non-negative integer", "int": "an integer",
    "pair_pos": "a positive integer or a list of two", "pair_nonneg":
    "a non-negative integer or a list of two", "float": "a number", "pos_float": "a positive number",
    "prob": "a number in [0, 1)", "bool": "`true` or `false`", "padding":
    "a non-negative integer, a list of two, or \"same\"", "sections": "a positive integer or a list of them",
    "opt_pos_pair": "a positive integer, a list of two, or `none`",
    "opt_pos": "a positive integer or `none`",
    "dims": "a list of one to five positive integers (one of them may be -1)",
    "shape": "a list of one to five positive integers",
    "perm": "a list of per-sample dims, each once (0 is the first dim after the batch)",
    "int_list": "a list of integers",
    "pos_list": "a list of positive integers",
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pair(v, low: int) -> bool:
    if _is_int(v):
        return v >= low
    return isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x >= low for x in v)


MAX_INT_ARG = (1 << 31) - 1  # sizes, paddings, strides...: what PyTorch's kernels index with


def ints_in(value) -> list[int]:
    """The integers an argument holds (itself, or a list's)."""
    if _is_int(value):
        return [value]
    if isinstance(value, list):
        return [v for v in value if _is_int(v)]
    return []


def check_value(kind: str, value) -> bool:
    """Whether `value` is acceptable for an argument of this kind."""
    if kind == "pos":
        return _is_int(value) and value >= 1
    if kind == "nonneg":
        return _is_int(value) and value >= 0
    if kind == "int":
        return _is_int(value)
    if kind == "pair_pos":
        return _is_pair(value, 1)
    if kind == "pair_nonneg":
        return _is_pair(value, 0)
    if kind == "opt_pos":
        return value is None or (_is_int(value) and value >= 1)
    if kind == "opt_pos_pair":
        return value is None or _is_pair(value, 1)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "pos_float":
        return check_value("float", value) and value > 0
    if kind == "prob":
        return check_value("float", value) and 0 <= value < 1
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "padding":
        return value == AUTO or value == "same" or _is_pair(value, 0)
    if kind == "sections":
        return (_is_int(value) and value >= 1) or (
            isinstance(value, list) and value and all(_is_int(x) and x >= 1 for x in value))
    if kind == "dims":
        return isinstance(value, list) and 1 <= len(value) <= 5 and all(
            _is_int(x) and (x >= 1 or x == -1) for x in value) and value.count(-1) <= 1
    if kind == "shape":
        return isinstance(value, list) and 1 <= len(value) <= 5 and all(
            _is_int(x) and x >= 1 for x in value)
    if kind in ("perm", "int_list"):
        return isinstance(value, list) and all(_is_int(x) for x in value) and (
            kind == "int_list" or len(set(value)) == len(value))
    if kind == "pos_list":
        return isinstance(value, list) and value != [] and all(_is_int(x) and x >= 1 for x in value)
    if kind.startswith("choice:"):
        return value in kind.removeprefix("choice:").split("|")
    raise AssertionError(f"unknown argument kind {kind}")


def kind_words(kind: str) -> str:
    if kind.startswith("choice:"):
        return "one of " + ", ".join(f'"{c}"' for c in kind.removeprefix("choice:").split("|"))
    return _KIND_WORDS.get(kind, kind)


# ---- source formatting for the generated code (values are checked ints/floats/bools)

def lit(value) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float):  # always a float literal: `0.0`, never `0` (TorchScript types)
        text = repr(value)
        return text if any(c in text for c in ".eEn") else text + ".0"
    return repr(value)


def _kwargs(pairs: list[tuple[str, Any, Any]]) -> str:
    """`name=value` for each argument that differs from PyTorch's default."""
    return "".join(f", {name}={lit(value)}" for name, value, default in pairs if value != default)


# ---- shape rules and lowering, op by op

def _needs_map(op: str, ins: list[Shape]) -> Shape:
    shape = ins[0]
    if len(shape) != 3:
        raise ShapeError("E304", f"`{op}` needs a [C, H, W] feature map, got {format_shape(shape)}",
                         hint="feature-map layers cannot follow `flatten`")
    return shape


def conv_padding(args: dict) -> tuple[int, int]:
    """`auto` padding keeps the size at stride 1 for odd kernels: dilation*(k-1)//2 per axis."""
    padding = args["padding"]
    if padding in (AUTO, "same"):
        kh, kw = pair(args["kernel_size"])
        dh, dw = pair(args["dilation"])
        return (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
    return pair(padding)


def _spatial(op: str, shape: Shape, kernel, stride, padding, dilation, ceil_mode=False,
             pool=False) -> tuple[int, int]:
    sizes = []
    for axis, n, k, s, p, d in zip(("height", "width"), shape[1:], pair(kernel), pair(stride),
                                   pair(padding), pair(dilation)):
        if pool and p > k // 2:
            raise ShapeError("E313", f"`{op}` padding {p} is more than half its kernel {k}",
                             hint="PyTorch requires pad <= kernel_size / 2")
        out = (pool_output_size(n, k, s, p, d, ceil_mode) if pool
               else conv_output_size(n, k, s, p, d))
        if out < 1 and pool:
            raise ShapeError(
                "E313", f"`{op}` window {d * (k - 1) + 1} is larger than its padded input "
                        f"{n + 2 * p} ({axis} of {format_shape(shape)})",
                notes=(size_formula(n, k, s, p, d, ceil_mode),),
                hint="to pool a whole map whatever its size, use `gap` or `adaptive_avgpool(1)`")
        if out < 1:
            raise ShapeError(
                "E303", f"`{op}` makes the {axis} {out}: its input {format_shape(shape)} is too small",
                notes=(size_formula(n, k, s, p, d, ceil_mode),),
                hint="use a larger input, or a smaller kernel, stride or dilation")
        sizes.append(out)
    return sizes[0], sizes[1]


def _conv_infer(args, ins):
    c, h, w = _needs_map("conv", ins)
    _declared("conv", "in_channels", args["in_channels"], c, ins[0])
    groups, out = args["groups"], args["out_channels"]
    if c % groups or out % groups:
        which = f"input channels {c}" if c % groups else f"output channels {out}"
        raise ShapeError("E309", f"`groups={groups}` does not divide the {which}",
                         hint="groups must divide both the input and the output channels")
    if args["padding"] == "same" and any(s != 1 for s in pair(args["stride"])):
        raise ShapeError("E308", "`padding=\"same\"` needs stride 1")
    if args["padding"] == "same":  # PyTorch pads unevenly when the kernel is even
        return (out, h, w)
    ho, wo = _spatial("conv", ins[0], args["kernel_size"], args["stride"], conv_padding(args),
                      args["dilation"])
    return (out, ho, wo)


def _conv_module(args, ins):
    kh, kw = pair(args["kernel_size"])
    kernel = kh if kh == kw else [kh, kw]
    ph, pw = conv_padding(args)
    padding = ph if ph == pw else [ph, pw]
    if args["padding"] == "same":
        padding = "same"
    head = "nn.LazyConv2d(" if ins is None else f"nn.Conv2d({ins[0][0]}, "
    return (f"{head}{args['out_channels']}, {lit(kernel)}"
            + _kwargs([("stride", args["stride"], 1), ("padding", padding, 0),
                       ("dilation", args["dilation"], 1), ("groups", args["groups"], 1),
                       ("bias", args["bias"], True)]) + ")")


def _conv_cost(args, ins, out):
    kh, kw = pair(args["kernel_size"])
    weight = out[0] * (ins[0][0] // args["groups"]) * kh * kw
    bias = out[0] if args["bias"] else 0
    return Cost(params=weight + bias, macs=weight * out[1] * out[2])


def _bn_infer(args, ins):
    if len(ins[0]) not in (1, 2, 3):
        raise ShapeError("E304", f"`bn` needs [C, H, W], [C, L] or [F], got {format_shape(ins[0])}")
    return ins[0]


def _bn_module(args, ins):
    options = _kwargs([("eps", args["eps"], 1e-5), ("momentum", args["momentum"], 0.1),
                       ("affine", args["affine"], True)])
    if ins is None:
        return f"nn.LazyBatchNorm2d({options.removeprefix(', ')})"
    cls = "BatchNorm2d" if len(ins[0]) == 3 else "BatchNorm1d"
    return f"nn.{cls}({ins[0][0]}{options})"


def _bn_cost(args, ins, out):
    c = ins[0][0]
    # running mean and var, and an int64 counter (num_batches_tracked)
    return Cost(params=2 * c if args["affine"] else 0, buffers=2 * c + 1, int64_buffers=1)


def _declared(op: str, name: str, declared, actual: int, shape) -> None:
    """Inputs sizes may be written down (documentation, or a check); they must then agree."""
    if declared is not None and declared != actual:
        raise ShapeError("E301", f"`{op}` declares {name}={declared}, but its input "
                                 f"{format_shape(shape)} has {actual}",
                         hint=f"drop `{name}` (netc infers it) or fix the layers before")


def _linear_infer(args, ins):
    # As in PyTorch, a linear layer acts on the last axis; on a map that is the width,
    # which is legal but rarely meant (see `_linear_warnings`).
    _declared("linear", "in_features", args["in_features"], ins[0][-1], ins[0])
    return (*ins[0][:-1], args["out_features"])


def _linear_warnings(args, ins):
    if len(ins[0]) == 3:  # tokens [L, D] and channels-last maps [H, W, C] are what it is for
        yield ("W301", f"`linear` on a {format_shape(ins[0])} map acts on its last axis only "
                       f"(in_features={ins[0][-1]})",
               "add `flatten` (after global pooling) before `linear` to use every feature")


def _linear_module(args, ins):
    head = "nn.LazyLinear(" if ins is None else f"nn.Linear({ins[0][-1]}, "
    return (f"{head}{args['out_features']}"
            + _kwargs([("bias", args["bias"], True)]) + ")")


def _linear_cost(args, ins, out):
    weight = ins[0][-1] * args["out_features"]
    rows = math.prod(ins[0][:-1])
    return Cost(params=weight + (args["out_features"] if args["bias"] else 0), macs=weight * rows)


def _same(args, ins):
    return ins[0]


def _pool_infer(op):
    def infer(args, ins):
        c, _, _ = _needs_map(op, ins)
        stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
        dilation = args.get("dilation", 1)
        ho, wo = _spatial(op, ins[0], args["kernel_size"], stride, args["padding"], dilation,
                          args["ceil_mode"], pool=True)
        return (c, ho, wo)
    return infer


def _maxpool_call(args, xs, _, ins):
    stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
    return (f"F.max_pool2d({xs[0]}, {lit(args['kernel_size'])}, {lit(stride)}, "
            f"{lit(args['padding'])}, {lit(args['dilation'])}, {lit(args['ceil_mode'])})")


def _avgpool_call(args, xs, _, ins):
    stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
    return (f"F.avg_pool2d({xs[0]}, {lit(args['kernel_size'])}, {lit(stride)}, "
            f"{lit(args['padding'])}, {lit(args['ceil_mode'])}, {lit(args['count_include_pad'])})")


def _maxpool_layer(args, inplace):
    stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
    return (f"nn.MaxPool2d({lit(args['kernel_size'])}, {lit(stride)}, {lit(args['padding'])}, "
            f"{lit(args['dilation'])}, ceil_mode={lit(args['ceil_mode'])})")


def _avgpool_layer(args, inplace):
    stride = args["stride"] if args["stride"] is not None else args["kernel_size"]
    return (f"nn.AvgPool2d({lit(args['kernel_size'])}, {lit(stride)}, {lit(args['padding'])}, "
            f"{lit(args['ceil_mode'])}, {lit(args['count_include_pad'])})")


def _adaptive_infer(op):
    def infer(args, ins):
        c, h, w = _needs_map(op, ins)
        oh, ow = (args["output_size"], args["output_size"]) if _is_int(args["output_size"]) \
            else args["output_size"]
        return (c, oh, ow)
    return infer


def _global_infer(op):
    def infer(args, ins):
        c, _, _ = _needs_map(op, ins)
        return (c, 1, 1)
    return infer


def _dim_index(op: str, dim: int, rank: int, shape, what: str = "dim") -> int:
    """A per-sample dim (negative counts from the end) as an index, or E308."""
    if not -rank <= dim < rank:
        raise ShapeError("E308", f"`{op}` {what} {dim} is out of range for {format_shape(shape)}",
                         hint="dims count per sample: 0 is the first dim after the batch "
                              "(channels of a map), -1 the last")
    return dim % rank


def _flatten_infer(args, ins):
    shape = ins[0]
    start = _dim_index("flatten", args["start"], len(shape), shape, "start")
    end = _dim_index("flatten", args["end"], len(shape), shape, "end")
    if start > end:
        raise ShapeError("E308", f"`flatten` start {args['start']} comes after end {args['end']}")
    return (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])


def _flatten_call(args, xs, _, ins):
    if args["start"] == 0 and args["end"] == -1:
        return f"torch.flatten({xs[0]}, 1)"
    rank = len(ins[0])
    end = args["end"] % rank + 1
    return f"torch.flatten({xs[0]}, {args['start'] % rank + 1}, {end})"


def _flatten_layer(args, inplace):
    if args["start"] == 0 and args["end"] == -1:
        return "nn.Flatten(1)"
    return f"nn.Flatten({sample_dim(args['start'])}, {sample_dim(args['end'])})"


def _softmax_infer(args, ins):
    if not -len(ins[0]) <= args["dim"] < len(ins[0]):
        raise ShapeError("E308", f"`softmax` dim {args['dim']} is out of range for "
                                 f"{format_shape(ins[0])}",
                         hint="dims count per sample: 0 is the channel dimension")
    return ins[0]


def sample_dim(dim: int) -> int:
    """A per-sample dim (0 = channels) as PyTorch's batched dim; negative dims stay."""
    return dim + 1 if dim >= 0 else dim


def _cat_infer(args, ins):
    rank = len(ins[0])
    dim = args["dim"] if args["dim"] >= 0 else args["dim"] + rank
    if not 0 <= dim < rank or any(len(s) != rank for s in ins):
        listed = ", ".join(format_shape(s) for s in ins)
        raise ShapeError("E311", f"cannot concatenate {listed} along dim {args['dim']}")
    for shape in ins[1:]:
        if any(a != b for axis, (a, b) in enumerate(zip(ins[0], shape)) if axis != dim):
            listed = " and ".join(format_shape(s) for s in ins)
            raise ShapeError("E311", f"cannot concatenate {listed}: sizes differ outside dim {dim}",
                             hint="concatenated maps need the same height and width")
    out = list(ins[0])
    out[dim] = sum(s[dim] for s in ins)
    return tuple(out)


def _split_infer(args, ins):
    c = ins[0][0]
    sections = args["sections"]
    if _is_int(sections):
        if c % sections:
            raise ShapeError("E309", f"cannot split {c} channels into {sections} equal parts")
        sizes = [c // sections] * sections
    else:
        sizes = list(sections)
        if sum(sizes) != c:
            raise ShapeError("E311", f"split sizes {sizes} add up to {sum(sizes)}, not {c} channels")
    return Multi(tuple([size, *ins[0][1:]]) for size in sizes)


def _split_call(args, xs, _, ins):
    sections = args["sections"]
    if _is_int(sections):
        return f"torch.chunk({xs[0]}, {sections}, 1)"
    sizes = ", ".join(str(size) for size in sections)
    return f"torch.split({xs[0]}, [{sizes}], 1)"


def _getitem_infer(args, ins):
    return ins[0][args["index"]]


def _elementwise(verb: str):
    def infer(args, ins):
        return broadcast(list(ins), verb)
    return infer


def _elementwise_cost(args, ins, out):
    return Cost()


def _activation(name: str, expr: str, doc: str, layer: str) -> OpSpec:
    """A parameter-free elementwise op; `layer` is its nn class (`{}` takes `inplace=True`)."""
    return OpSpec(name, (), _same, doc, call=lambda args, xs, _, ins: expr.format(xs[0]),
                  layer=lambda args, inplace: layer.format("inplace=True" if inplace else ""))


OPS: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    OPS[spec.name] = spec
    for alias in spec.aliases:
        OPS[alias] = spec
    return spec


register(OpSpec(
    "conv",
    (P("out_channels", "pos"), P("kernel_size", "pair_pos"), P("stride", "pair_pos", 1),
     P("padding", "padding", AUTO), P("dilation", "pair_pos", 1), P("groups", "pos", 1),
     P("bias", "bool", True), P("in_channels", "opt_pos", None, keyword_only=True)),
    _conv_infer, "2-d convolution; in-channels are inferred, padding defaults to "
                 "dilation*(k-1)//2 ('same' at stride 1 for odd k)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_conv_module, cost=_conv_cost,
    aliases=("conv2d",)))
register(OpSpec(
    "bn", (P("eps", "pos_float", 1e-5), P("momentum", "prob", 0.1), P("affine", "bool", True)),
    _bn_infer, "batch normalisation over channels (BatchNorm2d, or BatchNorm1d after flatten)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_bn_module, cost=_bn_cost,
    aliases=("batchnorm",)))
register(OpSpec(
    "linear",
    (P("out_features", "pos"), P("bias", "bool", True),
     P("in_features", "opt_pos", None, keyword_only=True)),
    _linear_infer,
    "fully connected layer; in-features are inferred from the flat input",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_linear_module, cost=_linear_cost,
    warnings=_linear_warnings,
    aliases=("fc",)))
register(_activation("relu", "F.relu({})", "rectified linear unit", "nn.ReLU({})"))
register(_activation("relu6", "F.relu6({})", "ReLU clipped at 6 (MobileNet)", "nn.ReLU6({})"))
register(_activation("sigmoid", "torch.sigmoid({})", "logistic sigmoid (attention gates)", "nn.Sigmoid()"))
register(_activation("tanh", "torch.tanh({})", "hyperbolic tangent", "nn.Tanh()"))
register(_activation("silu", "F.silu({})", "SiLU / swish", "nn.SiLU({})"))
register(_activation("gelu", "F.gelu({})", "Gaussian error linear unit", "nn.GELU()"))
register(_activation("hardswish", "F.hardswish({})", "hard swish (MobileNetV3)", "nn.Hardswish({})"))
register(_activation("hardsigmoid", "F.hardsigmoid({})", "hard sigmoid", "nn.Hardsigmoid({})"))
register(_activation("identity", "{}", "passes its input through unchanged", "nn.Identity()"))
register(OpSpec(
    "leaky_relu", (P("negative_slope", "float", 0.01),), _same, "leaky ReLU",
    call=lambda args, xs, _, ins: f"F.leaky_relu({xs[0]}, {lit(args['negative_slope'])})",
    layer=lambda args, inplace: f"nn.LeakyReLU({lit(args['negative_slope'])})"))
register(OpSpec(
    "softmax", (P("dim", "int", 0),), _softmax_infer,
    "softmax along a per-sample dim (0 = channels)",
    call=lambda args, xs, _, ins: f"torch.softmax({xs[0]}, {sample_dim(args['dim'])})",
    layer=lambda args, inplace: f"nn.Softmax({sample_dim(args['dim'])})"))
register(OpSpec(
    "dropout", (P("p", "prob", 0.5),), _same, "dropout (active only in training mode)",
    call=lambda args, xs, _, ins: f"F.dropout({xs[0]}, {lit(args['p'])}, self.training)",
    layer=lambda args, inplace: f"nn.Dropout({lit(args['p'])})"))
register(OpSpec(
    "maxpool",
    (P("kernel_size", "pair_pos"), P("stride", "opt_pos_pair", None), P("padding", "pair_nonneg", 0),
     P("dilation", "pair_pos", 1), P("ceil_mode", "bool", False)),
    _pool_infer("maxpool"), "2-d max pooling; stride defaults to the kernel size",
    call=_maxpool_call, layer=_maxpool_layer, aliases=("max_pool",)))
register(OpSpec(
    "avgpool",
    (P("kernel_size", "pair_pos"), P("stride", "opt_pos_pair", None), P("padding", "pair_nonneg", 0),
     P("ceil_mode", "bool", False), P("count_include_pad", "bool", True)),
    _pool_infer("avgpool"), "2-d average pooling; stride defaults to the kernel size",
    call=_avgpool_call, layer=_avgpool_layer, aliases=("avg_pool",)))
register(OpSpec(
    "adaptive_avgpool", (P("output_size", "pair_pos"),), _adaptive_infer("adaptive_avgpool"),
    "average pooling to a fixed output size",
    call=lambda args, xs, _, ins: f"F.adaptive_avg_pool2d({xs[0]}, {lit(args['output_size'])})",
    layer=lambda args, inplace: f"nn.AdaptiveAvgPool2d({lit(args['output_size'])})"))
register(OpSpec(
    "adaptive_maxpool", (P("output_size", "pair_pos"),), _adaptive_infer("adaptive_maxpool"),
    "max pooling to a fixed output size",
    call=lambda args, xs, _, ins: f"F.adaptive_max_pool2d({xs[0]}, {lit(args['output_size'])})",
    layer=lambda args, inplace: f"nn.AdaptiveMaxPool2d({lit(args['output_size'])})"))
register(OpSpec(
    "gap", (), _global_infer("gap"), "global average pooling to [C, 1, 1]",
    call=lambda args, xs, _, ins: f"F.adaptive_avg_pool2d({xs[0]}, 1)",
    layer=lambda args, inplace: "nn.AdaptiveAvgPool2d(1)"))
register(OpSpec(
    "gmp", (), _global_infer("gmp"), "global max pooling to [C, 1, 1]",
    call=lambda args, xs, _, ins: f"F.adaptive_max_pool2d({xs[0]}, 1)",
    layer=lambda args, inplace: "nn.AdaptiveMaxPool2d(1)"))
register(OpSpec(
    "flatten", (P("start", "int", 0), P("end", "int", -1)), _flatten_infer,
    "flattens each sample to [F]; `flatten(1)` merges dims 1.. only ([C, H, W] -> [C, H*W])",
    call=_flatten_call, layer=_flatten_layer))
register(OpSpec(
    "add", (), _elementwise("add"), "elementwise sum of two or more tensors (also `a + b`)",
    call=lambda args, xs, _, ins: " + ".join(xs), cost=_elementwise_cost, variadic=True,
    aliases=("sum",)))
register(OpSpec(
    "mul", (), _elementwise("multiply"),
    "elementwise product, broadcasting a [C, 1, 1] gate (also `a * b`)",
    call=lambda args, xs, _, ins: " * ".join(xs), cost=_elementwise_cost, variadic=True))
register(OpSpec(
    "cat", (P("dim", "int", 0),), _cat_infer,
    "concatenation along a per-sample dim (0 = channels), inputs in the order written",
    call=lambda args, xs, _, ins: f"torch.cat([{', '.join(xs)}], {sample_dim(args['dim'])})",
    variadic=True, aliases=("concat",)))
register(OpSpec(
    "split", (P("sections", "sections"),), _split_infer,
    "splits channels into equal parts (an int) or given sizes (a list): `a, b = split(x, 2)`",
    call=_split_call))
register(OpSpec(
    "getitem", (P("index", "nonneg"),), _getitem_infer, "one result of a multi-result op",
    call=lambda args, xs, _, ins: f"{xs[0]}[{args['index']}]"))

def _radix_softmax_infer(args, ins):
    c = ins[0][0]
    radix, groups = args["radix"], args["groups"]
    if c % (radix * groups):
        raise ShapeError("E309", f"`radix_softmax` cannot split {c} channels into radix {radix} "
                                 f"x groups {groups}",
                         hint="the attention's channels must be radix * groups * n")
    return ins[0]


def _radix_softmax_call(args, xs, _, ins):
    x, radix, groups = xs[0], args["radix"], args["groups"]
    if radix == 1:
        return f"torch.sigmoid({x})"
    return (f"torch.softmax({x}.reshape({x}.size(0), {groups}, {radix}, -1).transpose(1, 2), 1)"
            f".reshape({x}.shape)")


register(OpSpec(
    "radix_softmax", (P("radix", "pos"), P("groups", "pos", 1)), _radix_softmax_infer,
    "softmax across `radix` branches within each of `groups` (split attention, selective "
    "kernels); channels come out radix-major, as timm's RadixSoftmax lays them out; "
    "radix 1 is a sigmoid gate",
    call=_radix_softmax_call))


def _reshape_infer(args, ins):
    shape = list(args["shape"])
    total = math.prod(ins[0])
    if -1 in shape:  # one size inferred from the others, as in PyTorch
        known = -math.prod(shape)
        if total % known:
            raise ShapeError("E311", f"cannot reshape {format_shape(ins[0])} ({total} values) "
                                     f"to {format_shape(tuple(shape))}: {known} does not divide it")
        shape[shape.index(-1)] = total // known
    shape = tuple(shape)
    if math.prod(shape) != math.prod(ins[0]):
        raise ShapeError("E311", f"cannot reshape {format_shape(ins[0])} ({math.prod(ins[0])} "
                                 f"values) to {format_shape(shape)} ({math.prod(shape)} values)",
                         hint="the new shape must hold exactly the input's values")
    return shape


def _reshape_call(args, xs, _, ins):
    """The target shape with the sizes that follow the input's spatial size left to run time,
    so the module runs at any input size where the reshape still makes sense."""
    x, dims = xs[0], [str(d) for d in args["shape"]]
    if -1 in args["shape"] or len(args["shape"]) not in (1, 3) or len(ins[0]) not in (1, 3):
        return f"{x}.reshape({x}.size(0), {', '.join(dims)})"  # sizes as written
    return f"{x}.reshape({x}.size(0), {', '.join(_runtime_dims(ins[0], tuple(args['shape']), x, dims))})"


def _runtime_dims(source: Shape, target: Shape, x: str, dims: list[str]) -> list[str]:
    """Channels are fixed by the spec; spatial sizes are not. A flat target is `-1`; a map
    target keeps the input's height and width where it has the same ones (`x.size(2)`), and
    the one spatial size that absorbs the rest becomes `-1` ([24, 28, 28] -> [24, 1, 784]
    is `(B, 24, 1, -1)`). A vector source ([F] after pooling) has no spatial size to follow,
    except a [F, 1, 1] gate, whose F is `-1`."""
    if len(target) == 1:
        return ["-1"]
    if len(source) == 1:
        return ["-1", "1", "1"] if target[1:] == (1, 1) else dims
    spatial = [index for index in (1, 2) if target[index] != 1]
    if not spatial:
        return ["-1", "1", "1"]
    if target[1:] == source[1:]:
        return [dims[0], f"{x}.size(2)", f"{x}.size(3)"]
    if len(spatial) == 1:
        dims[spatial[0]] = "-1"
    elif target[1] == source[1]:
        dims[1], dims[2] = f"{x}.size(2)", "-1"
    elif target[2] == source[2]:
        dims[1], dims[2] = "-1", f"{x}.size(3)"
    return dims


register(OpSpec(
    "reshape", (P("shape", "dims"),), _reshape_infer,
    "gives each sample a new shape with the same values (one size may be -1) "
    "(`reshape([c, 1, 1])` turns a vector into a channel gate); sizes that follow the "
    "input's height and width are taken from the tensor at run time",
    call=_reshape_call))


# ---- normalisation over features, regularisation, shuffles

def _layer_norm_infer(args, ins):
    shape = ins[0]
    dim = _dim_index("layer_norm", args["dim"], len(shape), shape)
    if dim != len(shape) - 1 and not (len(shape) == 3 and dim == 0):
        raise ShapeError("E308", f"`layer_norm` normalises the last dim, or the channels "
                                 f"(dim 0) of a [C, H, W] map; dim {args['dim']} of "
                                 f"{format_shape(shape)} is neither")
    return shape


def _channels_first_norm(args, ins) -> bool:
    return ins is not None and len(ins[0]) == 3 and args["dim"] % 3 == 0


def _layer_norm_module(args, ins):
    if ins is None:
        raise no_lazy_form("layer_norm")
    first = _channels_first_norm(args, ins)
    size = ins[0][0] if first else ins[0][-1]
    cls = "LayerNorm2d" if first else "nn.LayerNorm"
    return f"{cls}({size}" + _kwargs([("eps", args["eps"], 1e-5),
                                       ("elementwise_affine", args["affine"], True)]) + ")"


def _layer_norm_cost(args, ins, out):
    size = ins[0][0] if _channels_first_norm(args, ins) else ins[0][-1]
    return Cost(params=2 * size if args["affine"] else 0)


_HELPER_LAYER_NORM_2D = '''
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an [N, C, H, W] map (torchvision's ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
'''

_HELPER_PERMUTE = '''
class Permute(nn.Module):
    """Reorders the dims of its input (torchvision's `ops.misc.Permute`: dims count the batch)."""

    def __init__(self, dims: List[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)
'''

# source of helper classes, by name; a generated file defines the ones its layers use
HELPERS = {"LayerNorm2d": _HELPER_LAYER_NORM_2D, "Permute": _HELPER_PERMUTE}


def _group_norm_infer(args, ins):
    c = ins[0][0]
    if len(ins[0]) < 2:
        raise ShapeError("E304", f"`group_norm` needs [C, ...] with positions, got {format_shape(ins[0])}")
    if c % args["groups"]:
        raise ShapeError("E309", f"`group_norm` groups={args['groups']} does not divide the "
                                 f"{c} channels", hint="groups must divide the channels")
    return ins[0]


def _group_norm_module(args, ins):
    if ins is None:
        raise no_lazy_form("group_norm")
    return (f"nn.GroupNorm({args['groups']}, {ins[0][0]}"
            + _kwargs([("eps", args["eps"], 1e-5), ("affine", args["affine"], True)]) + ")")


def _stochastic_depth_call(args, xs, _, ins):
    """torchvision's `ops.stochastic_depth`: in training, each sample (`row`) or the whole
    batch (`batch`) is dropped with probability p and the rest scaled by 1/(1-p); identity
    in eval."""
    x, p = xs[0], args["p"]
    if p == 0:
        return x
    size = f"[{x}.size(0)] + [1] * ({x}.dim() - 1)" if args["mode"] == "row" else f"[1] * {x}.dim()"
    keep = 1.0 - p
    noise = f"torch.empty({size}, dtype={x}.dtype, device={x}.device).bernoulli_({lit(keep)})"
    if keep > 0:
        noise += f".div_({lit(keep)})"
    return f"({x} * {noise} if self.training else {x})"


def _channel_shuffle_infer(args, ins):
    c = ins[0][0]
    if len(ins[0]) < 2:
        raise ShapeError("E304", f"`channel_shuffle` needs [C, ...], got {format_shape(ins[0])}")
    if c % args["groups"]:
        raise ShapeError("E309", f"`channel_shuffle` groups={args['groups']} does not divide "
                                 f"the {c} channels")
    return ins[0]


def _channel_shuffle_call(args, xs, _, ins):
    x, g, c = xs[0], args["groups"], ins[0][0]
    rest = ", ".join(f"{x}.size({i + 2})" for i in range(len(ins[0]) - 1))
    return (f"{x}.reshape({x}.size(0), {g}, {c // g}, {rest}).transpose(1, 2)"
            f".reshape({x}.size(0), {c}, {rest})")


register(OpSpec(
    "layer_norm", (P("eps", "pos_float", 1e-5), P("dim", "int", -1), P("affine", "bool", True)),
    _layer_norm_infer,
    "layer normalisation over the last dim (tokens [L, D], channels-last maps); `dim = 0` "
    "normalises the channels of a [C, H, W] map (ConvNeXt's LayerNorm2d)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_layer_norm_module,
    cost=_layer_norm_cost,
    helpers=lambda args: ("LayerNorm2d",) if args["dim"] == 0 else (),
    aliases=("layernorm",)))
register(OpSpec(
    "group_norm", (P("groups", "pos"), P("eps", "pos_float", 1e-5), P("affine", "bool", True)),
    _group_norm_infer, "group normalisation: channels in `groups` groups (GroupNorm)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_group_norm_module,
    cost=lambda args, ins, out: Cost(params=2 * ins[0][0] if args["affine"] else 0),
    aliases=("groupnorm",)))
register(OpSpec(
    "stochastic_depth", (P("p", "prob"), P("mode", "choice:row|batch", "row")), _same,
    "stochastic depth: in training drops each sample (`row`) or the batch with probability "
    "p and scales the rest by 1/(1-p), as torchvision's StochasticDepth; identity in eval",
    call=_stochastic_depth_call, aliases=("drop_path",)))
register(OpSpec(
    "channel_shuffle", (P("groups", "pos"),), _channel_shuffle_infer,
    "interleaves the channels of `groups` groups (ShuffleNet): [g, C/g] -> [C/g, g]",
    call=_channel_shuffle_call))


# ---- tensors of any rank: tokens [L, D], channels-last maps [H, W, C], 1-d signals [C, L]

def _permute_infer(args, ins):
    shape, dims = ins[0], args["dims"]
    rank = len(shape)
    if sorted(d % rank if -rank <= d < rank else d + 10 * rank for d in dims) != list(range(rank)):
        raise ShapeError("E308", f"`permute` dims {dims} are not an order of the "
                                 f"{rank} dims of {format_shape(shape)}",
                         hint="dims count per sample: [1, 2, 0] turns [C, H, W] into [H, W, C]")
    return tuple(shape[d] for d in dims)


def _batch_dims(dims, rank: int) -> list[int]:
    return [0] + [d % rank + 1 for d in dims]


register(OpSpec(
    "permute", (P("dims", "perm"),), _permute_infer,
    "reorders each sample's dims: `permute([1, 2, 0])` turns [C, H, W] into [H, W, C]",
    call=lambda args, xs, _, ins: f"{xs[0]}.permute({', '.join(map(str, _batch_dims(args['dims'], len(args['dims']))))})",
    layer=lambda args, inplace: f"Permute({_batch_dims(args['dims'], len(args['dims']))!r})",
    helpers=lambda args: ("Permute",)))


def _transpose_infer(args, ins):
    shape = list(ins[0])
    a = _dim_index("transpose", args["dim0"], len(shape), ins[0])
    b = _dim_index("transpose", args["dim1"], len(shape), ins[0])
    shape[a], shape[b] = shape[b], shape[a]
    return tuple(shape)


register(OpSpec(
    "transpose", (P("dim0", "int"), P("dim1", "int")), _transpose_infer,
    "swaps two per-sample dims: `transpose(0, 1)` turns [D, L] into [L, D]",
    call=lambda args, xs, _, ins: f"{xs[0]}.transpose({args['dim0'] % len(ins[0]) + 1}, "
                                  f"{args['dim1'] % len(ins[0]) + 1})"))


def _unflatten_infer(args, ins):
    shape = ins[0]
    dim = _dim_index("unflatten", args["dim"], len(shape), shape)
    if math.prod(args["sizes"]) != shape[dim]:
        raise ShapeError("E311", f"`unflatten` sizes {args['sizes']} hold {math.prod(args['sizes'])} "
                                 f"values, but dim {args['dim']} of {format_shape(shape)} has {shape[dim]}")
    return (*shape[:dim], *args["sizes"], *shape[dim + 1:])


register(OpSpec(
    "unflatten", (P("dim", "int"), P("sizes", "pos_list")), _unflatten_infer,
    "splits one per-sample dim into several: `unflatten(1, [14, 14])` turns [D, 196] into [D, 14, 14]",
    call=lambda args, xs, _, ins: f"{xs[0]}.unflatten({args['dim'] % len(ins[0]) + 1}, "
                                  f"{lit(args['sizes'])})"))


def _matmul_infer(args, ins):
    if len(ins) != 2:
        raise ShapeError("E305", f"`matmul` takes two tensors, got {len(ins)}")
    a, b = ins
    if len(a) < 2 or len(b) < 2 or len(a) != len(b):
        raise ShapeError("E304", f"`matmul` needs two stacks of matrices of one rank, got "
                                 f"{format_shape(a)} and {format_shape(b)}")
    if a[-1] != b[-2]:
        raise ShapeError("E301", f"cannot multiply {format_shape(a)} by {format_shape(b)}: "
                                 f"{a[-1]} columns against {b[-2]} rows")
    batch = broadcast([tuple(a[:-2]), tuple(b[:-2])], "matmul") if len(a) > 2 else ()
    return (*batch, a[-2], b[-1])


register(OpSpec(
    "matmul", (), _matmul_infer, "matrix product of the last two dims, batched over the rest",
    call=lambda args, xs, _, ins: f"torch.matmul({xs[0]}, {xs[1]})",
    cost=lambda args, ins, out: Cost(macs=math.prod(out) * ins[0][-1]), variadic=True))


def _mha_infer(args, ins):
    shape = ins[0]
    if len(shape) != 2:
        raise ShapeError("E304", f"`mha` attends over tokens [L, D], got {format_shape(shape)}",
                         hint="flatten a map to tokens first: `flatten(1) >> transpose(0, 1)`")
    if shape[1] % args["heads"]:
        raise ShapeError("E309", f"`mha` heads={args['heads']} does not divide the embedding "
                                 f"size {shape[1]}", hint="heads must divide D")
    return shape


def _mha_module(args, ins):
    if ins is None:
        raise no_lazy_form("mha")
    return (f"nn.MultiheadAttention({ins[0][1]}, {args['heads']}"
            + _kwargs([("dropout", args["dropout"], 0.0), ("bias", args["bias"], True)])
            + ", batch_first=True)")


def _mha_cost(args, ins, out):
    length, d = ins[0]
    params = 4 * d * d + (4 * d if args["bias"] else 0)
    return Cost(params=params, macs=4 * length * d * d + 2 * length * length * d)


register(OpSpec(
    "mha", (P("heads", "pos"), P("dropout", "prob", 0.0), P("bias", "bool", True)), _mha_infer,
    "multi-head self-attention over tokens [L, D] (nn.MultiheadAttention, batch first: "
    "keys `in_proj_weight`, `out_proj`)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]}, {xs[0]}, {xs[0]}, need_weights=False)[0]",
    module=_mha_module, cost=_mha_cost, plain_call=False, aliases=("self_attention",)))


def _param_shape(args) -> tuple[int, ...]:
    """A learnable tensor's per-sample shape: its stored shape, less a leading 1 that lines
    up with the batch (ViT's class token [1, 1, D] is [1, D] per sample)."""
    shape = tuple(args["shape"])
    return shape[1:] if len(shape) > 1 and shape[0] == 1 else shape


def _param_module(args, ins):
    sizes = ", ".join(map(str, args["shape"]))
    init = args["init"]
    if init == "zeros":
        data = f"torch.zeros({sizes})"
    elif init == "full":
        data = f"torch.full(({sizes},), {lit(float(args['value']))})"
    elif init == "normal":
        data = f"torch.empty({sizes}).normal_(std={lit(float(args['std']))})"
    else:
        data = f"nn.init.trunc_normal_(torch.empty({sizes}), std={lit(float(args['std']))})"
    return f"nn.Parameter({data})"


register(OpSpec(
    "param", (P("shape", "shape"), P("init", "choice:zeros|full|normal|trunc_normal", "zeros"),
              P("value", "float", 0.0), P("std", "pos_float", 0.02)),
    lambda args, ins: _param_shape(args),
    "a learnable tensor of the given stored shape under its label (`class_token: "
    "param([1, 1, D])`); a leading 1 lines up with the batch, and it broadcasts as in PyTorch",
    call=lambda args, xs, m, ins: m, module=_param_module,
    cost=lambda args, ins, out: Cost(params=math.prod(args["shape"])), arity=0, plain_call=False,
    aliases=("parameter",)))
register(OpSpec(
    "batch_expand", (), lambda args, ins: ins[0],
    "a learnable tensor repeated along the batch of another tensor (for `cat`)",
    call=lambda args, xs, _, ins: f"{xs[0]}.expand({xs[1]}.size(0), {', '.join(['-1'] * len(ins[0]))})",
    variadic=True))


def _select_infer(args, ins):
    shape = ins[0]
    dim = _dim_index("select", args["dim"], len(shape), shape)
    if len(shape) < 2:
        raise ShapeError("E304", f"`select` would leave nothing of {format_shape(shape)}")
    if not -shape[dim] <= args["index"] < shape[dim]:
        raise ShapeError("E308", f"index {args['index']} is out of range for dim {args['dim']} "
                                 f"of {format_shape(shape)} (size {shape[dim]})")
    return (*shape[:dim], *shape[dim + 1:])


def _select_call(args, xs, _, ins):
    dim = args["dim"] % len(ins[0])
    if dim == 0:
        return f"{xs[0]}[:, {args['index']}]"
    return f"{xs[0]}.select({dim + 1}, {args['index']})"


register(OpSpec(
    "select", (P("dim", "int"), P("index", "int")), _select_infer,
    "one position along a per-sample dim, which disappears: `x[0]` is `select(0, 0)` "
    "(ViT's class token out of [L, D])",
    call=_select_call))


def _conv1d_infer(args, ins):
    shape = ins[0]
    if len(shape) != 2:
        raise ShapeError("E304", f"`conv1d` needs a 1-d signal [C, L], got {format_shape(shape)}",
                         hint="a pooled [C, 1, 1] vector becomes [1, C] with "
                              "`flatten >> unflatten(0, [1, C])`")
    c, length = shape
    groups, out = args["groups"], args["out_channels"]
    if c % groups or out % groups:
        which = f"input channels {c}" if c % groups else f"output channels {out}"
        raise ShapeError("E309", f"`groups={groups}` does not divide the {which}",
                         hint="groups must divide both the input and the output channels")
    k, s, d = args["kernel_size"], args["stride"], args["dilation"]
    p = d * (k - 1) // 2 if args["padding"] == AUTO else args["padding"]
    size = conv_output_size(length, k, s, p, d)
    if size < 1:
        raise ShapeError("E303", f"`conv1d` makes the length {size}: its input "
                                 f"{format_shape(shape)} is too short",
                         notes=(size_formula(length, k, s, p, d),))
    return (out, size)


def _conv1d_module(args, ins):
    k, d = args["kernel_size"], args["dilation"]
    p = d * (k - 1) // 2 if args["padding"] == AUTO else args["padding"]
    head = "nn.LazyConv1d(" if ins is None else f"nn.Conv1d({ins[0][0]}, "
    return (f"{head}{args['out_channels']}, {k}"
            + _kwargs([("stride", args["stride"], 1), ("padding", p, 0), ("dilation", d, 1),
                       ("groups", args["groups"], 1), ("bias", args["bias"], True)]) + ")")


def _conv1d_cost(args, ins, out):
    weight = out[0] * (ins[0][0] // args["groups"]) * args["kernel_size"]
    return Cost(params=weight + (out[0] if args["bias"] else 0), macs=weight * out[1])


register(OpSpec(
    "conv1d",
    (P("out_channels", "pos"), P("kernel_size", "pos"), P("stride", "pos", 1),
     P("padding", "nonneg", AUTO), P("dilation", "pos", 1), P("groups", "pos", 1),
     P("bias", "bool", True)),
    _conv1d_infer, "1-d convolution over a signal [C, L] (nn.Conv1d); padding defaults to "
                   "dilation*(k-1)//2, as `conv`'s",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_conv1d_module, cost=_conv1d_cost))


INTERNAL_OPS = {"getitem", "batch_expand"}
# ops after which a rank-3 shape is no longer read as [C, H, W] (tokens, channels-last maps)
REORDERING_OPS = {"permute", "transpose", "unflatten", "matmul", "mha", "batch_expand", "select"}


def lookup(name: str) -> OpSpec | None:
    return OPS.get(name) if name not in INTERNAL_OPS else None


def suggest(name: str, candidates) -> str | None:
    """`did you mean` for a misspelt name, from difflib as pip does for commands."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


# the ops of hierarchical vision transformers live in their own module (they register here)
from netc import ops_attention, ops_window  # noqa: E402,F401  (last: they use the names above)
