"""The torchvision model zoo as specs: which spec equals which torchvision model, at which
input sizes it is compared, and the comparisons themselves (used by tests/test_zoo.py, and
runnable by hand: `python tests/zoo.py NAME...` prints params, keys and output differences).

Each spec `specs/<name>.net` must equal `torchvision.models.<name>(weights=None, **kwargs)`:
the same parameter count, the same state_dict keys with the same shapes in the same order,
and, with the reference's own random weights loaded into the netc module (`strict=True`;
batch norm statistics measured, see calibrate_norms), the same outputs in eval mode at the
reference's input size (its weights' crop size) and at one other size where torchvision
runs. The tolerance is relative to the output's magnitude, which random weights spread
widely (the largest |logit| measured from 0.03 for AlexNet to 2e11 for EfficientNet-B7 at
64 px); it leaves room for float32 sums taken in another order, although every model
measured so far gives the reference's outputs exactly.
"""
from __future__ import annotations

import contextlib
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
RTOL = 1e-4  # of the largest |output| of the reference
LIGHT_PARAMS = 25_000_000  # above this, every output test is in the slow suite


@dataclass(frozen=True)
class Model:
    name: str
    family: str
    size: int  # the reference's input size (its DEFAULT weights' crop size)
    second: int  # another size where torchvision runs (small, for the default suite)
    params: int  # torchvision's count, to sort light from heavy without building anything
    kwargs: dict = field(default_factory=dict)  # constructor arguments beyond weights=None

    @property
    def light(self) -> bool:
        return self.params <= LIGHT_PARAMS


def _family(family: str, rows, size: int = 224, second: int = 64, **common):
    return {name: Model(name, family, row_size or size, second, params, **common)
            for name, params, row_size in rows}


ZOO: dict[str, Model] = {
    **_family("AlexNet", [("alexnet", 61_100_840, None)]),
    **_family("VGG", [("vgg11", 132_863_336, None), ("vgg11_bn", 132_868_840, None),
                      ("vgg13", 133_047_848, None), ("vgg13_bn", 133_053_736, None),
                      ("vgg16", 138_357_544, None), ("vgg16_bn", 138_365_992, None),
                      ("vgg19", 143_667_240, None), ("vgg19_bn", 143_678_248, None)]),
    **_family("SqueezeNet", [("squeezenet1_0", 1_248_424, None),
                             ("squeezenet1_1", 1_235_496, None)]),
    **_family("ResNet", [("resnext101_32x8d", 88_791_336, None),
                         ("resnext101_64x4d", 83_455_272, None),
                         ("wide_resnet101_2", 126_886_696, None)]),
    **_family("MNASNet", [("mnasnet0_5", 2_218_512, None), ("mnasnet0_75", 3_170_208, None),
                          ("mnasnet1_0", 4_383_312, None), ("mnasnet1_3", 6_282_256, None)]),
    **_family("MobileNetV3", [("mobilenet_v3_large", 5_483_032, None),
                              ("mobilenet_v3_small", 2_542_856, None)]),
    **_family("ShuffleNetV2", [("shufflenet_v2_x0_5", 1_366_792, None),
                               ("shufflenet_v2_x1_0", 2_278_604, None),
                               ("shufflenet_v2_x1_5", 3_503_624, None),
                               ("shufflenet_v2_x2_0", 7_393_996, None)]),
    **_family("EfficientNet", [("efficientnet_b0", 5_288_548, 224), ("efficientnet_b1", 7_794_184, 240),
                               ("efficientnet_b2", 9_109_994, 288), ("efficientnet_b3", 12_233_232, 300),
                               ("efficientnet_b4", 19_341_616, 380), ("efficientnet_b5", 30_389_784, 456),
                               ("efficientnet_b6", 43_040_704, 528), ("efficientnet_b7", 66_347_960, 600),
                               ("efficientnet_v2_s", 21_458_488, 384), ("efficientnet_v2_m", 54_139_356, 480),
                               ("efficientnet_v2_l", 118_515_272, 480)]),
    **_family("RegNet", [("regnet_x_400mf", 5_495_976, None), ("regnet_x_800mf", 7_259_656, None),
                         ("regnet_x_1_6gf", 9_190_136, None), ("regnet_x_3_2gf", 15_296_552, None),
                         ("regnet_x_8gf", 39_572_648, None), ("regnet_x_16gf", 54_278_536, None),
                         ("regnet_x_32gf", 107_811_560, None),
                         ("regnet_y_400mf", 4_344_144, None), ("regnet_y_800mf", 6_432_512, None),
                         ("regnet_y_1_6gf", 11_202_430, None), ("regnet_y_3_2gf", 19_436_338, None),
                         ("regnet_y_8gf", 39_381_472, None), ("regnet_y_16gf", 83_590_140, None),
                         ("regnet_y_32gf", 145_046_770, None), ("regnet_y_128gf", 644_812_894, 384)]),
    **_family("Inception-v3", [("inception_v3", 23_834_568, None)], size=299, second=96,
              kwargs={"aux_logits": False, "init_weights": True, "transform_input": False}),
}


def family_of(name: str) -> str:
    return ZOO[name].family


# --- building both sides ----------------------------------------------------------------------

def reference(name: str, device: str | None = None):
    """torchvision's model, random init; on the meta device (structure only), no init at all."""
    from refmodels import torchvision

    make = getattr(torchvision().models, name)
    if device != "meta":
        with torch.device(device or "cpu"):
            return make(weights=None, **ZOO[name].kwargs).eval()
    with _EmptyOnMeta(), _no_init():
        return make(weights=None, **ZOO[name].kwargs).eval()


class _EmptyOnMeta(TorchFunctionMode):
    """Parameters (made by torch.empty) on the meta device, other tensors where they were:
    torchvision's RegNet computes its widths with torch.arange(...).tolist(), which a
    `torch.device("meta")` context would make data-less."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


@contextmanager
def _no_init():
    """torch.nn.init's functions as no-ops: on meta tensors they only cost time (a random fill
    of a meta tensor goes through torch's reference implementations: 3 of the 4.5 s it took to
    make EfficientNetV2-L on the meta device)."""
    from torch.nn import init

    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(init, n) for n in names}
    try:
        for n in names:
            setattr(init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def ours(name: str, device: str | None = None):
    """The spec's module (on `device`); the memory limit is lifted for the largest models."""
    return lower(compiled(name), device)


def compiled(name: str):
    """The spec compiled (once per path and process: compiling the largest takes seconds)."""
    return _compile(SPECS / f"{name}.net")


@cache
def _compile(path: Path):
    import netc

    result = netc.compile(path)
    assert result.ok, result.diagnostics
    return result


def lower(result, device: str | None = None):
    from netc.api import lower as lower_compiled

    with torch.device(device or "cpu"), (_no_init() if device == "meta" else contextlib.nullcontext()):
        return lower_compiled(result, {"memory": 1 << 40})[0].eval()


def shapes(module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(t.shape) for key, t in module.state_dict().items()}


def static_params(result) -> int:
    """The parameter count `netc check` / `netc summary` report: from the graph, no torch."""
    from netc.analysis import totals

    return totals(result.graph).params


def calibrate_norms(model, size: int, seed: int = 1):
    """Batch norm statistics measured on random images (each norm's running mean and variance
    over one batch of 2 at size x size), and random affine parameters. At torchvision's init
    the statistics are mean 0, var 1 while the activations are far from that (MobileNetV3's
    and MNASNet's depthwise convs shrink them layer by layer, so their logits did not depend
    on the input to 1e-6); measured statistics keep every layer's output near unit scale, so
    the output depends on every layer and a wrong padding, stride or eps shows."""
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return model
    generator = torch.Generator().manual_seed(seed)
    momenta = [m.momentum for m in norms]
    with torch.no_grad():
        for module in norms:
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: here, the statistics of the one batch
        model.train()
        model(torch.randn(2, 3, size, size, generator=generator))
        model.eval()
        for module, momentum in zip(norms, momenta):
            module.momentum = momentum
            module.num_batches_tracked.zero_()
            if module.affine:
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
    return model


def with_reference_weights(name: str):
    """(reference, ours) with ours holding the reference's own random weights: ours is made on
    the meta device and takes the reference's tensors (`assign=True`), so the weights exist
    once (regnet_y_128gf's are 2.6 GB), and calibrate_norms(reference) sets both."""
    ref = reference(name)
    mine = ours(name, device="meta")
    mine.load_state_dict(ref.state_dict(), strict=True, assign=True)
    return ref, mine.eval()


def compare(ref, mine, size: int) -> tuple[float, float, float]:
    """output_difference at `size`, the norms' statistics measured at that size first."""
    calibrate_norms(ref, size)
    return output_difference(ref, mine, size)


def output_difference(ref, mine, size: int, batch: int = 2, seed: int = 0) -> tuple[float, float, float]:
    """(max |ours - reference|, max |reference|, max |reference's sample 0 - sample 1|) on a
    random batch at size x size: the difference, the scale it is measured against, and how
    much the output depends on the input at all."""
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = ref(x)
        got = mine(x)
    assert got.shape == expected.shape, (tuple(got.shape), tuple(expected.shape))
    return ((got - expected).abs().max().item(), expected.abs().max().item(),
            (expected[0] - expected[1]).abs().max().item())


def record(name: str, size: int, diff: float, scale: float, spread: float) -> None:
    """With NETC_ZOO_RECORD=FILE, appends one tab-separated line per comparison to FILE (the
    figures of the closing table: model, size, max |difference|, max |output|, spread)."""
    path = os.environ.get("NETC_ZOO_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{name}\t{size}\t{diff:.3g}\t{scale:.3g}\t{spread:.3g}\n")


def main(names: list[str]) -> None:
    """Prints one line per model: params, keys, and the output differences at both sizes."""
    import time

    torch.set_num_threads(1)
    for name in names:
        start = time.perf_counter()
        model = ZOO[name]
        ref, mine = with_reference_weights(name)
        params = sum(p.numel() for p in ref.parameters())
        keys_equal = shapes(ref) == shapes(mine)
        cells = []
        for size in (model.size, model.second):
            diff, scale, spread = compare(ref, mine, size)
            cells.append(f"{size}px {diff:.2e} (of {scale:.2e}, rel {diff / scale:.1e},"
                         f" spread {spread / scale:.1e})")
        print(f"{name}: params {params} {'equal' if params == static_params(compiled(name)) else 'DIFFER'}"
              f", keys {'equal' if keys_equal else 'DIFFER'}, " + ", ".join(cells)
              + f", {time.perf_counter() - start:.0f} s", flush=True)
        del ref, mine


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:] or list(ZOO))
