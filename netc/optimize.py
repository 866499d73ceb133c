"""optimize: the eval-only lowering of `netc build --optimize`, as named passes over the IR.

Each pass is a small function from a typed `Graph` to a new one (the input is never changed),
listed in `PASSES` in the order they run; `netc build --optimize --passes` prints them and
`--disable-pass NAME` switches one off. What they do, and why it pays (bench/bench_optimize.py
measures it; README "Optimised builds" has the table):

- `drop_dropout_identity`: dropout is the identity in eval mode, and so is `identity`; both
  go, their readers read the input instead.
- `fold_batchnorm`: a BatchNorm whose input is a conv or linear read by nothing else is folded
  into it (`w' = w * g / sqrt(var + eps)`, `b' = (b - mean) * g / sqrt(var + eps) + beta`):
  one pass over the activations less per conv; the conv gets a bias.
- `fuse_conv_activation`: a conv followed by an activation oneDNN can apply as the conv
  writes its output (relu, relu6, silu, sigmoid, tanh, hardswish) becomes one call of
  `torch.ops.mkldnn._convolution_pointwise`, the fused kernel PyTorch's own CPU compiler
  (inductor) uses. Not for ONNX: ONNX Runtime fuses by itself and has no such op.
- `channels_last`: the image inputs are made channels-last (NHWC) once, at the start, and the
  conv weights stored so; oneDNN's convolutions run NHWC without reordering every layer.
- `prepack_weights` (off by default; `netc.build(optimize=[...])` names it): the fused
  convs' weights reordered into oneDNN's layout once (netc/prepacked.py), for the live
  module only. It helped MobileNetV2 at batch 1 and slowed ResNet-50 down.

The optimised module is a normal generated module (readable source: a folded conv is an
`nn.Conv2d` with a bias). Its `state_dict` holds the *folded* weights under the names that
remain: no BatchNorm keys, conv biases where BatchNorms were folded. `fold_state_dict` turns
an unoptimised state_dict (a checkpoint of the plain build) into it, which is what
`netc.build(spec, optimize=True, weights=...)` and `netc build --optimize --weights` do: the
weights are checked against the plain module, strictly, then folded. The module is for
inference: training it would train the folded weights, with no BatchNorm statistics.

Optimisations target CPU (the fused kernels are oneDNN's); every one is tested against the
plain lowering in eval mode (tests/test_optimize.py), each alone and all together.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterable

from netc.ir import Graph, Node
from netc.ops import INTERNAL_OPS, OPS, Cost, OpSpec, P, conv_padding, register
from netc.shapes import pair


@dataclass(frozen=True)
class Fold:
    """A BatchNorm at `bn` folded into the conv or linear layer at `into`."""

    into: str  # the layer's module path (state_dict prefix)
    bn: str  # the BatchNorm's module path
    eps: float
    affine: bool
    had_bias: bool


@dataclass
class Optimized:
    """A graph after the passes, and what building its module needs to know."""

    graph: Graph
    passes: tuple[str, ...]  # the passes that ran, in order
    folds: list[Fold] = field(default_factory=list)
    channels_last: bool = False  # store 4-d weights channels-last
    prepack: bool = False  # the fused convs' weights reordered for oneDNN once, when built


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Optimized], None]
    doc: str
    formats: tuple[str, ...] = ("torchscript", "export", "onnx", "py")  # where it applies


# ---- rewriting the IR

def rebuild(graph: Graph, redirect: dict[str, str] | None = None, remove: Iterable[str] = (),
            changed: dict[str, Node] | None = None, added: Iterable[Node] = ()) -> Graph:
    """A new graph: every read of a node in `redirect` (inputs of nodes, the outputs, regions'
    inputs and outputs) goes to its replacement instead; nodes in `remove` are left out,
    those in `changed` swapped for the new value, `added` ones inserted (`order` places them;
    their own inputs are taken as given)."""
    redirect, changed, remove, added = redirect or {}, changed or {}, set(remove), list(added)

    def to(node_id: str) -> str:
        while node_id in redirect:
            node_id = redirect[node_id]
        return node_id

    new = Graph(graph.name)
    new.doc, new.spec_path, new._order = graph.doc, graph.spec_path, graph.last_order
    new.inputs = list(graph.inputs)
    kept = [changed.get(n.id, n) for n in graph.topo_order() if n.id not in remove]
    kept = [dataclasses.replace(n, inputs=tuple(to(i) for i in n.inputs)) for n in kept]
    for node in sorted([*kept, *added], key=lambda n: n.order):
        new.add(node)
    new.outputs = [to(o) for o in graph.outputs]
    for region in graph.regions:
        entry = (tuple(to(i) for i in region.input) if isinstance(region.input, tuple)
                 else to(region.input))
        new.regions.append(dataclasses.replace(region, input=entry, output=to(region.output)))
    return new


def _sole_reader(graph: Graph, node: Node) -> Node | None:
    """The one node reading `node` (once), if it is not also a net output."""
    readers = graph.consumers(node.id)
    if len(readers) != 1 or node.id in graph.outputs or readers[0].inputs.count(node.id) != 1:
        return None
    return readers[0]


# ---- the passes

def drop_dropout_identity(opt: Optimized) -> None:
    graph = opt.graph
    gone = {n.id: n.inputs[0] for n in graph if n.op in ("dropout", "identity")}
    if gone:
        opt.graph = rebuild(graph, redirect=gone, remove=gone)


def fold_batchnorm(opt: Optimized) -> None:
    graph = opt.graph
    replace, changed = {}, {}
    for node in graph:
        if node.op not in ("conv", "linear") or not node.module:
            continue
        bn = _sole_reader(graph, node)
        if bn is None or bn.op != "bn" or not bn.module or bn.shape != node.shape:
            continue
        changed[node.id] = dataclasses.replace(node, args={**node.args, "bias": True})
        replace[bn.id] = node.id
        opt.folds.append(Fold(node.module, bn.module, bn.args["eps"], bn.args["affine"],
                              node.args["bias"]))
    if replace:
        opt.graph = rebuild(graph, redirect=replace, remove=replace, changed=changed)


# activation op -> (oneDNN's post-op name, its scalars)
_ONEDNN_POST_OPS = {
    "relu": ("relu", ()),
    "relu6": ("hardtanh", (0.0, 6.0)),
    "silu": ("swish", ()),
    "sigmoid": ("sigmoid", ()),
    "tanh": ("tanh", ()),
    "hardswish": ("hardswish", ()),
}


def fuse_conv_activation(opt: Optimized) -> None:
    graph = opt.graph
    replace, changed = {}, {}
    for node in graph:
        if node.op != "conv" or not node.module or node.args["padding"] == "same":
            continue  # "same" may pad unevenly, which the fused call cannot
        act = _sole_reader(graph, node)
        if act is None or act.op not in _ONEDNN_POST_OPS:
            continue
        changed[node.id] = dataclasses.replace(node, op="conv_act",
                                               args={**node.args, "activation": act.op})
        replace[act.id] = node.id
    if replace:
        opt.graph = rebuild(graph, redirect=replace, remove=replace, changed=changed)
        _sequences_with_forward(opt.graph, [opt.graph.node(n) for n in changed])


def _sequences_with_forward(graph: Graph, fused: list[Node]) -> None:
    """An `nn.Sequential` calls its items as layers, and a fused conv is a layer (its
    `nn.Conv2d`, for the weights) plus a call: the sequences that hold one directly get a
    `forward` of their own (as a block has), with the same submodule names."""
    for node in fused:
        holders = [r for r in graph.regions if r.kind == "sequence" and
                   tuple(r.path.split(".")) == node.scope[:r.path.count(".") + 1]]
        if holders:
            inner = max(holders, key=lambda r: r.path.count("."))
            graph.regions = [dataclasses.replace(
                r, kind="block", doc=r.doc or "A sequence with a fused conv (--optimize), "
                                              "called by its own forward.")
                if r is inner else r for r in graph.regions]


def channels_last(opt: Optimized) -> None:
    graph = opt.graph
    added = []
    for spec in graph.inputs:
        if len(spec.shape) != 3:  # only images ([C, H, W] per sample) have a channels axis
            continue
        node = graph.node(spec.name)
        # ordered just before the input (inputs come before every block): within no region
        added.append(Node(f"{spec.name}_channels_last", "channels_last", {}, (spec.name,),
                          node.span, node.order - 0.5, shape=node.shape))
    if added:
        opt.graph = rebuild(graph, redirect={n.inputs[0]: n.id for n in added}, added=added)
        opt.channels_last = True


def prepack_weights(opt: Optimized) -> None:
    """Nothing changes in the graph: `build_module` reorders the fused convs' weights into
    oneDNN's own layout once, instead of on every call."""
    opt.prepack = any(n.op == "conv_act" for n in opt.graph)


PASSES: tuple[Pass, ...] = (
    Pass("drop_dropout_identity", drop_dropout_identity,
         "remove dropout and identity (both pass their input through in eval mode)"),
    Pass("fold_batchnorm", fold_batchnorm,
         "fold a BatchNorm into the conv or linear layer before it (its only reader)"),
    Pass("fuse_conv_activation", fuse_conv_activation,
         "a conv and the activation after it as one oneDNN call (relu, relu6, silu, sigmoid, "
         "tanh, hardswish); CPU only, not in ONNX", formats=("torchscript", "export", "py")),
    Pass("channels_last", channels_last,
         "run convolutions channels-last (NHWC): the image input converted once, conv "
         "weights stored so"),
    Pass("prepack_weights", prepack_weights,
         "the fused convs' weights in oneDNN's blocked layout, reordered once when the module "
         "is made rather than on every call; the live module of netc.build only (artifacts "
         "keep plain tensors)", formats=("module",)),
)
PASS_NAMES = tuple(p.name for p in PASSES)
# Measured, and not on by default (bench/bench_optimize.py, numbers in the README):
# fuse_conv_activation pays only at batch 8 on one thread (+5% to +16%); at batch 1, or on
# two threads, oneDNN reorders the weight on every call and the fused net was up to 2.7x
# slower than without it. prepack_weights (which needs the fusion) helped MobileNetV2 at
# batch 1 and made ResNet-50 2.6x slower. `--enable-pass` / `optimize=[...]` name them.
OPT_IN = ("fuse_conv_activation", "prepack_weights")
DEFAULT_PASSES = tuple(name for name in PASS_NAMES if name not in OPT_IN)


def select(disabled: Iterable[str] = (), fmt: str | None = None,
           enabled: Iterable[str] = ()) -> tuple[str, ...]:
    """The passes to run: the default ones and `enabled`, but `disabled` (unknown names raise
    ValueError) and those that do not apply to the artifact format `fmt`."""
    disabled, enabled = set(disabled), set(enabled)
    unknown = sorted((disabled | enabled) - set(PASS_NAMES))
    if unknown:
        raise ValueError(f"unknown pass {', '.join(unknown)} (known: {', '.join(PASS_NAMES)})")
    wanted = (set(DEFAULT_PASSES) | enabled) - disabled
    return tuple(p.name for p in PASSES if p.name in wanted and (fmt is None or fmt in p.formats))


def optimize(graph: Graph, passes: Iterable[str] = DEFAULT_PASSES) -> Optimized:
    """Run the named passes, in `PASSES` order, on a copy of a valid graph."""
    wanted = set(passes)
    unknown = sorted(wanted - set(PASS_NAMES))
    if unknown:
        raise ValueError(f"unknown pass {', '.join(unknown)} (known: {', '.join(PASS_NAMES)})")
    opt = Optimized(rebuild(graph), tuple(p.name for p in PASSES if p.name in wanted))
    for p in PASSES:
        if p.name in wanted:
            p.run(opt)
    opt.graph.check()
    return opt


def describe_passes() -> str:
    """The pass list `netc build --optimize --passes` prints."""
    width = max(len(name) for name in PASS_NAMES)
    lines = ["passes of `netc build --optimize`, in the order they run (switch one off with "
             "--disable-pass NAME):"]
    for p in PASSES:
        only = "" if len(p.formats) == 4 else f" [formats: {', '.join(p.formats)}]"
        only = " [netc.build only]" if p.formats == ("module",) else only
        if p.name in OPT_IN:
            only += (" [off by default: netc.build(optimize=[...]) names it]"
                     if p.formats == ("module",) else " [off by default: --enable-pass NAME]")
        lines.append(f"  {p.name:{width}}  {p.doc}{only}")
    return "\n".join(lines)


# ---- the ops the passes introduce (internal: a spec cannot name them)

def _lit_ints(values) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _conv_act_call(args, xs, m, ins) -> str:
    attr, scalars = _ONEDNN_POST_OPS[args["activation"]]
    # TorchScript types the scalar list as `Scalar?[]` only when told (see `source`); an
    # activation without scalars gets [None], as torch.export cannot save an empty one
    listed = ("torch.jit.annotate(List[Optional[Union[int, float, complex]]], "
              f"[{', '.join(repr(s) for s in scalars) or 'None'}])")
    return (f"torch.ops.mkldnn._convolution_pointwise({xs[0]}, {m}.weight, {m}.bias, "
            f"{_lit_ints(conv_padding(args))}, {_lit_ints(pair(args['stride']))}, "
            f"{_lit_ints(pair(args['dilation']))}, {args['groups']}, {attr!r}, {listed}, None)")


def _register_internal_ops() -> None:
    conv = OPS["conv"]
    register(dataclasses.replace(
        conv, name="conv_act", aliases=(), doc="a conv with a fused activation (--optimize)",
        call=_conv_act_call, params=(*conv.params, P("activation", "str", "relu"))))
    register(OpSpec("channels_last", (), lambda args, ins: ins[0],
                    "the input as channels-last (--optimize)",
                    call=lambda args, xs, m, ins: f"{xs[0]}.contiguous(memory_format=torch."
                                                  f"channels_last)",
                    cost=lambda args, ins, out: Cost()))
    INTERNAL_OPS.update({"conv_act", "channels_last"})


_register_internal_ops()


# ---- source and weights

def source(code):
    """The optimised module's source: the fused calls annotate their scalar lists with
    typing's names, which the generated header imports only when it uses `List`."""
    if "torch.ops.mkldnn._convolution_pointwise" not in code.src:
        return code
    src = code.src.replace("\nimport torch\n",
                           "\nfrom typing import List, Optional, Union  # fused convs' scalars\n"
                           "import torch\n", 1)
    return dataclasses.replace(code, src=src)


def fold_state_dict(state: dict, folds: list[Fold]) -> dict:
    """The optimised module's state_dict from the plain module's: each folded BatchNorm's
    statistics and affine parameters multiplied into its layer (in float64), its keys gone."""
    import torch

    out = dict(state)
    for fold in folds:
        bn = fold.bn + "."
        weight = state[f"{fold.into}.weight"]
        mean = state[bn + "running_mean"].double()
        scale = torch.rsqrt(state[bn + "running_var"].double() + fold.eps)
        if fold.affine:
            scale = scale * state[bn + "weight"].double()
        bias = state[f"{fold.into}.bias"].double() if fold.had_bias else torch.zeros_like(mean)
        shift = (bias - mean) * scale
        if fold.affine:
            shift = shift + state[bn + "bias"].double()
        shape = (-1,) + (1,) * (weight.dim() - 1)
        out[f"{fold.into}.weight"] = (weight.double() * scale.reshape(shape)).to(weight.dtype)
        out[f"{fold.into}.bias"] = shift.to(weight.dtype)
        for key in [k for k in out if k.startswith(bn)]:
            del out[key]
    return out


def build_module(plain, opt: Optimized, code):
    """The optimised module, its weights folded from `plain` (the eval module of the plain
    lowering, weights loaded), in eval mode."""
    import torch

    from netc.load import load_class

    module = load_class(code, opt.graph.name)()
    module.load_state_dict(fold_state_dict(plain.state_dict(), opt.folds), strict=True)
    if opt.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if opt.prepack:
        for node in opt.graph:
            if node.op == "conv_act":
                _prepack(module.get_submodule(node.module), node.args)
    return module.eval()


def _prepack(conv, args) -> None:
    from netc.prepacked import PrepackedConv2d

    PrepackedConv2d.convert(conv, conv_padding(args), pair(args["stride"]),
                            pair(args["dilation"]))


def lower(graph: Graph, plain, passes: Iterable[str] = DEFAULT_PASSES, spec_name: str = "spec"):
    """The optimised module of a valid graph, from `plain` (its plain module, weights loaded):
    (module, its source as `PythonCode`, the `Optimized` record)."""
    from netc.codegen import emit_module

    opt = optimize(graph, passes)
    code = source(emit_module(opt.graph, spec_name))
    return build_module(plain.eval(), opt, code), code, opt
