"""A built model is a tree of modules like torchvision's: each named block application is a
submodule whose class is named after the block and has its own `forward`; each labelled
sequence is an `nn.Sequential` (indexable, sliceable). Against the torchvision and timm
references, container for container: each reference container that holds parameters is at
the same path in the built model and, called on the inputs the reference container saw,
returns what it returned."""
from __future__ import annotations

import copy
import re
from functools import partial

import pytest
import torch
from torch import nn

from conftest import PARITY, reference, with_slow
from refmodels import reference_model

# the specs with written expectations below (the torchvision zoo's module trees are compared
# with torchvision's key by key, in order, by tests/test_zoo.py)
ALL_SPECS = sorted(PARITY)


# specs whose reference is a torchvision or timm model (importable, with its module tree)
REFERENCED = sorted(stem for stem in PARITY
                    if reference(PARITY[stem])["source"] in ("torchvision", "timm"))

# a small input each net takes (above each spec's minimum input; batch 2 catches a block
# that mixes samples); the CIFAR nets at their own 32 px, NiN (at least 67 px) at 96
INPUT = {"simple_cnn": (2, 3, 32, 32), "sknet": (2, 3, 32, 32), "senet18": (2, 3, 32, 32),
         "densenet_bc_100": (2, 3, 32, 32), "nin": (2, 1, 96, 96)}
DEFAULT_INPUT = (2, 3, 64, 64)

RTOL, ATOL = 1e-4, 1e-5


# (small tensors: intra-op threads only contend on a shared machine)
pytestmark = pytest.mark.usefixtures("one_thread")


def small_input(stem: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(INPUT.get(stem, DEFAULT_INPUT), generator=generator)


# --- recording what modules see and return ------------------------------------------------

def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def record_calls(model: nn.Module, paths, *inputs) -> dict[str, list[tuple]]:
    """Run `model(*inputs)` (no grad) and return, for each path whose module was called,
    its calls as (args, kwargs, output), cloned when seen: inputs before the module runs
    (in-place ops inside cannot change them), outputs before the caller can."""
    calls: dict[str, list[tuple]] = {}
    pending: dict[str, list] = {}
    handles = []

    def before(path, _module, args, kwargs):
        pending.setdefault(path, []).append((_clone(args), _clone(kwargs)))

    def after(path, _module, _args, _kwargs, output):
        args, kwargs = pending[path].pop()
        calls.setdefault(path, []).append((args, kwargs, _clone(output)))

    try:  # hooks registered inside: none is left behind on a shared model
        for path in paths:
            module = model.get_submodule(path)
            handles.append(module.register_forward_pre_hook(partial(before, path),
                                                            with_kwargs=True))
            handles.append(module.register_forward_hook(partial(after, path), with_kwargs=True))
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def replay(model: nn.Module, calls: dict[str, list[tuple]]) -> dict[str, str]:
    """Call the module at each recorded path of `model` with the recorded inputs: for each
    path that is missing, raises, or returns something else, what happened (empty: all equal)."""
    problems = {}
    for path, path_calls in calls.items():
        try:
            module = model.get_submodule(path)
        except AttributeError:
            problems[path] = "missing"
            continue
        kind = type(module).__name__
        for args, kwargs, expected in path_calls:
            try:
                with torch.no_grad():
                    got = module(*_clone(args), **_clone(kwargs))
            except Exception as error:  # report every container, not just the first
                first = (str(error).strip().splitlines() or [""])[0]
                problems[path] = f"{kind} raises {type(error).__name__}: {first[:160]}"
                break
            try:
                torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
            except AssertionError as error:
                detail = " ".join(line.strip() for line in str(error).splitlines()[:4])
                problems[path] = f"{kind} differs: {detail[:240]}"
                break
    return problems


def report(problems: dict[str, str], order: list[str]) -> str:
    """One line per distinct problem, with every path that has it (in `order`)."""
    paths: dict[str, list[str]] = {}
    for path in sorted(problems, key=order.index):
        paths.setdefault(problems[path], []).append(path)
    return "\n".join(f"  {what}\n    at {len(where)}: {', '.join(where)}"
                     for what, where in paths.items())


def reference_containers(model: nn.Module) -> list[str]:
    """Paths of the containers that hold parameters: modules (not the root) with a child
    that has parameters. A layer with its own weights and parameter-free helpers (timm's
    BatchNormAct2d: a BN holding its activation) is a layer, not a container."""
    return [path for path, module in model.named_modules()
            if path and any(any(True for _ in child.parameters()) for child in module.children())]


LAYER_TYPES = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def reference_layers(model: nn.Module) -> list[str]:
    """Paths of the plain torch layers with weights (exactly Conv2d, Linear, BatchNorm2d; not
    subclasses such as timm's BatchNormAct2d, which also applies its activation)."""
    return [path for path, module in model.named_modules() if type(module) in LAYER_TYPES]


def randomise_norms_(model: nn.Module, seed: int = 1) -> None:
    """Random running statistics and affine parameters in every BN, so that no BN is the
    identity in eval mode (a freshly built model's are 0 / 1 / 1 / 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                if module.affine:
                    module.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=generator))
                    module.bias.copy_(0.1 * torch.randn(n, generator=generator))


# --- each reference against its spec, container for container ------------------------------

class Pair:
    """The reference (random init, random BN statistics) and the netc model with the
    reference's state_dict loaded strictly, both in eval mode, and what every reference
    container and layer saw and returned on a small input."""

    def __init__(self, stem: str, built):
        torch.manual_seed(0)
        self.stem = stem
        self.reference = reference_model(reference(PARITY[stem])).eval()
        randomise_norms_(self.reference)
        self.ours = copy.deepcopy(built(stem).module).eval()  # the session's module stays as is
        self.ours.load_state_dict(self.reference.state_dict(), strict=True)
        self.input = small_input(stem)
        self.containers = reference_containers(self.reference)
        self.layers = reference_layers(self.reference)
        self.calls = record_calls(self.reference, self.containers + self.layers, self.input)
        with torch.no_grad():
            self.output = self.reference(self.input)


@pytest.fixture(scope="module", params=with_slow(REFERENCED))
def pair(request, built):
    # module scope with params: pytest runs every test of one spec, then drops its pair
    return Pair(request.param, built)


def test_reference_containers_were_recorded(pair):
    """The capture itself: every reference container with a forward of its own ran (an
    nn.ModuleList, timm's SelectiveKernel `paths`, is iterated, never called)."""
    assert pair.containers, "no reference container holds parameters"
    called = [p for p in pair.containers
              if type(pair.reference.get_submodule(p)).forward is not nn.Module.forward]
    assert sorted(set(called) - set(pair.calls)) == []
    assert all(p in pair.calls for p in pair.layers)


def test_reference_replays_on_itself(pair):
    """The harness: the reference's own containers, replayed, give what they gave."""
    calls = {p: c for p, c in pair.calls.items() if p in pair.containers}
    assert replay(pair.reference, calls) == {}


def test_output_equals_reference(pair):
    with torch.no_grad():
        out = pair.ours(pair.input)
    torch.testing.assert_close(out, pair.output, rtol=RTOL, atol=ATOL)


def test_layers_equal_reference_layers(pair):
    """Every conv, linear and BN of the reference, at the same path in the built model,
    gives the same output on the same input (the weights loaded where they belong)."""
    calls = {p: c for p, c in pair.calls.items() if p in pair.layers}
    assert calls
    problems = replay(pair.ours, calls)
    if problems:
        pytest.fail(f"{pair.stem}: {len(problems)} of {len(calls)} reference layers missing or "
                    f"different:\n{report(problems, pair.layers)}", pytrace=False)


# Containers the language cannot reproduce yet, by spec: timm's SelectiveKernelAttn takes the
# paths stacked into one 5-d tensor [B, paths, C, H, W] and returns softmaxed weights of that
# rank; netc's tensors are per-sample rank 1 or 3, so its `attn` runs on the pooled sum and
# returns the logits (the softmax follows in the enclosing block). Its layers and every
# enclosing block are still compared.
KNOWN_DIFFERENCES = {stem: (".attn",) for stem in ("skresnet18", "skresnet34", "skresnext50_32x4d")}


def test_containers_equal_reference_containers(pair):
    """Every reference container that holds parameters (a block, a stage, a sequence) is at
    the same path in the built model, and on the inputs the reference's saw it returns what
    the reference's returned."""
    calls = {p: c for p, c in pair.calls.items() if p in pair.containers and
             not p.endswith(KNOWN_DIFFERENCES.get(pair.stem, ("<none>",)))}
    assert calls
    problems = replay(pair.ours, calls)
    if problems:
        pytest.fail(f"{pair.stem}: {len(problems)} of {len(calls)} reference containers missing "
                    f"or different:\n{report(problems, pair.containers)}", pytrace=False)


# --- every spec: a tree of named blocks and sequences --------------------------------------

RESNET_BLOCK = {"resnet18": "BasicBlock", "resnet34": "BasicBlock", "seresnet18": "BasicBlock",
                "resnet50": "Bottleneck", "resnet101": "Bottleneck", "resnet152": "Bottleneck",
                "resnext50_32x4d": "Bottleneck", "wide_resnet50_2": "Bottleneck",
                "seresnet50": "Bottleneck", "skresnet18": "SKBasic", "skresnet34": "SKBasic",
                "skresnext50_32x4d": "SKBottleneck", "resnest14d": "ResNeStBottleneck",
                "resnest26d": "ResNeStBottleneck", "resnest50d": "ResNeStBottleneck"}

# path -> the class name of the module there ("Sequential": an nn.Sequential). Paths take
# attributes and indices: `layer4[-1]`, `features[1].conv`.
CLASSES: dict[str, dict[str, str]] = {}
# path -> length, for sequences whose length is the reference's
LENGTHS: dict[str, dict[str, int]] = {}
for _stem, _block in RESNET_BLOCK.items():
    CLASSES[_stem] = {"layer1": "Sequential", "layer2": "Sequential", "layer3": "Sequential",
                      "layer4": "Sequential", "layer1[0]": _block, "layer4[-1]": _block,
                      "layer2[0].downsample": "Sequential"}
for _stem in ("seresnet18", "seresnet50"):
    CLASSES[_stem].update({"layer1[0].se": "SE", "layer4[-1].se": "SE"})
for _stem in ("skresnet18", "skresnet34"):
    CLASSES[_stem].update({"layer1[0].conv1": "SelectiveKernel", "layer1[0].conv2": "ConvBnAct",
                           "layer1[0].conv1.paths.0": "ConvBnAct"})
CLASSES["skresnext50_32x4d"].update({"layer1[0].conv1": "ConvBnAct",
                                     "layer1[0].conv2": "SelectiveKernel",
                                     "layer1[0].conv3": "ConvBnAct"})
for _stem in ("resnest14d", "resnest26d", "resnest50d"):
    CLASSES[_stem].update({"conv1": "Sequential", "layer1[0].conv2": "SplitAttention"})
    LENGTHS[_stem] = {"conv1": 7, "layer2[0].downsample": 3}
for _stem, _blocks in {"resnet18": [2, 2, 2, 2], "resnet50": [3, 4, 6, 3],
                       "resnet152": [3, 8, 36, 3]}.items():
    LENGTHS[_stem] = {f"layer{i + 1}": n for i, n in enumerate(_blocks)}
for _stem, _blocks in {"densenet121": 4, "densenet161": 4, "densenet169": 4,
                       "densenet201": 4, "densenet_bc_100": 3}.items():
    # as torchvision's: a dense block runs its layers on the list of every earlier map
    CLASSES[_stem] = {"features": "Sequential", "features.denseblock1": "DenseBlock",
                      "features.denseblock1.denselayer1": "DenseLayer",
                      "features.transition1": "Transition",
                      f"features.denseblock{_blocks}": "DenseBlock"}
    LENGTHS[_stem] = {"features": 12 if _blocks == 4 else 7}
CLASSES["densenet121"]["features.denseblock4.denselayer16"] = "DenseLayer"
CLASSES["densenet_bc_100"]["features.denseblock3.denselayer16"] = "DenseLayer"
CLASSES["googlenet"] = {"conv1": "BasicConv2d", "conv3": "BasicConv2d",
                        "inception3a": "Inception", "inception5b": "Inception",
                        "inception3a.branch1": "BasicConv2d",
                        "inception3a.branch2": "Sequential",
                        "inception3a.branch2[0]": "BasicConv2d",
                        "inception3a.branch4": "Sequential",
                        "inception3a.branch4[1]": "BasicConv2d"}
LENGTHS["googlenet"] = {"inception3a.branch2": 2, "inception3a.branch4": 2}
CLASSES["mobilenet_v2"] = {"features": "Sequential", "features[0]": "Sequential",
                           "features[1]": "InvertedResidual", "features[2]": "InvertedResidual",
                           "features[1].conv": "Sequential", "features[2].conv[0]": "Sequential",
                           "features[-1]": "Sequential", "classifier": "Sequential"}
LENGTHS["mobilenet_v2"] = {"features": 19, "features[0]": 3, "features[1].conv": 3,
                           "features[2].conv": 4, "classifier": 2}
CLASSES["vgg16_bn"] = {"features": "Sequential", "classifier": "Sequential"}
LENGTHS["vgg16_bn"] = {"features": 44, "classifier": 7}
CLASSES["nin"] = {"nin1": "NiNBlock", "nin4": "NiNBlock"}
CLASSES["senet18"] = {"layer1": "Sequential", "layer1[0]": "PreActSEBlock",
                      "layer4[-1]": "PreActSEBlock", "layer2[0].shortcut": "Sequential"}
LENGTHS["senet18"] = {"layer1": 2, "layer4": 2}
CLASSES["sknet"] = {"basic_conv": "Sequential", "stage_1": "Sequential", "stage_1[0]": "SKUnit",
                    "stage_1[0].feas": "Sequential", "stage_1[0].feas[2]": "SKConv",
                    "stage_1[0].shortcut": "Sequential", "stage_3[-2]": "SKUnit",
                    "classifier": "Sequential"}
LENGTHS["sknet"] = {"stage_1": 6, "stage_1[0].feas": 6, "basic_conv": 2}
CLASSES["simple_cnn"] = {}  # no blocks, no sequences: conv1, conv2, fc1, fc2 on the root

# a container to run on its own, as `m.layer3(x)`
STANDALONE = {stem: "layer3" for stem in RESNET_BLOCK} | {
    "senet18": "layer3", "sknet": "stage_2", "googlenet": "inception4a", "nin": "nin2",
    "mobilenet_v2": "features[3]", "vgg16_bn": "classifier",
    **{stem: "features.denseblock2" for stem in
       ("densenet121", "densenet161", "densenet169", "densenet201", "densenet_bc_100")}}


def test_every_spec_has_expectations():
    assert sorted(CLASSES) == ALL_SPECS
    assert sorted(set(STANDALONE) | {"simple_cnn"}) == ALL_SPECS


def resolve(model: nn.Module, path: str):
    """`layer4[-1].se` -> model.layer4[-1].se (attributes by name, indices with [])."""
    item = model
    for name, index in re.findall(r"([A-Za-z_0-9]+)|\[(-?\d+)\]", path):
        item = getattr(item, name) if name else item[int(index)]
    return item


def _path_in(model: nn.Module, target: nn.Module) -> str:
    return next((p for p, m in model.named_modules() if m is target), "?")


def _module(built, stem: str) -> nn.Module:
    return built(stem).module.eval()


@pytest.mark.parametrize("stem", ALL_SPECS)
def test_block_classes_are_named_after_blocks(stem, built):
    model = _module(built, stem)
    problems = []
    for path, name in CLASSES[stem].items():
        try:
            item = resolve(model, path)
        except Exception as error:
            problems.append(f"{path}: {type(error).__name__}: {error}")
            continue
        if name == "Sequential":
            if not isinstance(item, nn.Sequential):
                problems.append(f"{path}: {type(item).__name__}, not an nn.Sequential")
        elif type(item).__name__ != name:
            problems.append(f"{path}: class {type(item).__name__}, not {name}")
    for path, length in LENGTHS.get(stem, {}).items():
        try:
            got = len(resolve(model, path))
        except Exception as error:
            problems.append(f"len({path}): {type(error).__name__}: {error}")
            continue
        if got != length:
            problems.append(f"len({path}) == {got}, not {length}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stem", ALL_SPECS)
def test_no_bare_module_containers(stem, built):
    """No container is a bare nn.Module: each has a class (a block's, nn.Sequential, ...)
    with a forward of its own, so that it can be called, hooked and replaced."""
    model = _module(built, stem)
    bare = [path or "<root>" for path, module in model.named_modules()
            if type(module).forward is nn.Module.forward and not isinstance(
                module, (nn.ModuleList, nn.ModuleDict))]
    if bare:  # (a group of parallel branches that is never called: an nn.ModuleList, as timm's)
        pytest.fail(f"{len(bare)} bare nn.Module containers, without a forward: "
                    f"{', '.join(bare)}", pytrace=False)


@pytest.mark.parametrize("stem", ALL_SPECS)
def test_sequences_index_like_torchvision(stem, built):
    """Every nn.Sequential indexes and slices as torchvision's: one numbered by position
    (`features.0`, `features.1`, ...) has its parameter-free layers as modules too, so that
    `features[3]` is `features.3`."""
    model = _module(built, stem)
    sequences = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Sequential)]
    if any(name == "Sequential" for name in CLASSES[stem].values()):
        assert sequences, "no nn.Sequential in the model"
    problems = []
    for path, seq in sequences:
        names = [name for name, _ in seq.named_children()]
        children = list(seq.children())
        if all(name.isdigit() for name in names) and names != [str(i) for i in range(len(seq))]:
            problems.append(f"{path}: children {names}, not 0..{len(seq) - 1}")
        if not children:
            problems.append(f"{path}: empty")
            continue
        if seq[0] is not children[0] or seq[-1] is not children[-1]:
            problems.append(f"{path}: [0] / [-1] are not its first / last children")
        head = seq[:2]
        if not isinstance(head, nn.Sequential) or list(head.children()) != children[:2]:
            problems.append(f"{path}: [:2] is not an nn.Sequential of its first two children")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("stem", sorted(STANDALONE))
def test_a_container_runs_on_its_own(stem, built):
    """`m.layer3(x)`: hooked in a forward pass it fires; called on its own with the input it
    saw, it returns what it returned, and it takes a fresh tensor of that shape."""
    model = _module(built, stem)
    path = STANDALONE[stem]
    container = resolve(model, path)
    real = _path_in(model, container)
    calls = record_calls(model, [real], small_input(stem))
    assert real in calls, f"{path}: its forward hook did not fire in the model's forward pass"
    (args, kwargs, expected), = calls[real]
    with torch.no_grad():
        torch.testing.assert_close(container(*_clone(args), **_clone(kwargs)), expected,
                                   rtol=RTOL, atol=ATOL)
        fresh = torch.randn(args[0].shape, generator=torch.Generator().manual_seed(1))
        assert container(fresh).shape == expected.shape


@pytest.mark.parametrize("stem", ["resnet18", "resnet50"])
def test_resnet_stage_slices_chain_blocks(stem, built):
    """`m.layer1[:2](x)` is `m.layer1[1](m.layer1[0](x))`, and `m.layer4[-1]` is the last
    block, of the block's class, as torchvision's."""
    model = _module(built, stem)
    assert type(model.layer4[-1]).__name__ == RESNET_BLOCK[stem]
    assert isinstance(model.layer1, nn.Sequential)
    channels = model.layer1[0].conv1.in_channels
    x = torch.randn(2, channels, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[:2](x), model.layer1[1](model.layer1[0](x)))
        assert model.layer1(x).shape == (2, model.layer2[0].conv1.in_channels, 16, 16)
