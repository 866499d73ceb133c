"""Shape rules, measured against PyTorch: for many argument combinations, the static output
shape equals the shape torch computes (or both reject the input)."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from netc.infer import bind_op_args
from netc.ops import OPS
from netc.shapes import ShapeError


class _Err(Exception):
    def __init__(self, code, message, span, **_):
        super().__init__(message)
        self.code = code


def static(op: str, in_shape, **kwargs):
    spec = OPS[op]
    args = bind_op_args(spec, (), kwargs, {}, None, _Err)
    try:
        return spec.infer(args, [tuple(in_shape)])
    except ShapeError:
        return None


def runtime(fn, in_shape):
    try:
        return tuple(fn(torch.zeros(1, *in_shape)).shape[1:])
    except RuntimeError:
        return None


SIZES = [1, 2, 5, 7, 8, 13]
CONV_CASES = list(itertools.product(SIZES, [1, 2, 3, 5], [1, 2, 3], [0, 1, 2, "auto"], [1, 2]))


@pytest.mark.parametrize("n,k,s,p,d", CONV_CASES)
def test_conv_output_size_matches_torch(n, k, s, p, d):
    ours = static("conv", (4, n, n + 1), out_channels=6, kernel_size=k, stride=s, padding=p,
                  dilation=d)
    pad = d * (k - 1) // 2 if p == "auto" else p
    weight = torch.zeros(6, 4, k, k)
    theirs = runtime(lambda x: F.conv2d(x, weight, None, s, pad, d), (4, n, n + 1))
    assert ours == theirs


POOL_CASES = list(itertools.product(SIZES, [1, 2, 3], [1, 2, 3], [0, 1], [False, True]))


@pytest.mark.parametrize("n,k,s,p,ceil", POOL_CASES)
def test_maxpool_output_size_matches_torch(n, k, s, p, ceil):
    ours = static("maxpool", (3, n, n + 2), kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    theirs = runtime(lambda x: F.max_pool2d(x, k, s, p, 1, ceil), (3, n, n + 2))
    assert ours == theirs


@pytest.mark.parametrize("n,k,s,p,ceil", POOL_CASES)
def test_avgpool_output_size_matches_torch(n, k, s, p, ceil):
    ours = static("avgpool", (3, n, n), kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
    theirs = runtime(lambda x: F.avg_pool2d(x, k, s, p, ceil), (3, n, n))
    assert ours == theirs


@pytest.mark.parametrize("groups,cin,cout", [(1, 4, 6), (2, 4, 6), (4, 4, 8), (3, 4, 6), (2, 6, 3)])
def test_conv_groups_rule_matches_torch(groups, cin, cout):
    ours = static("conv", (cin, 5, 5), out_channels=cout, kernel_size=3, groups=groups)
    if cin % groups or cout % groups:
        assert ours is None
    else:
        assert ours == (cout, 5, 5)


@pytest.mark.parametrize("a,b,ok", [((8, 4, 4), (8, 1, 1), True), ((8, 4, 4), (8, 4, 4), True),
                                    ((8, 4, 4), (4, 4, 4), False), ((8, 4, 4), (8, 2, 2), False),
                                    ((8, 4, 4), (1, 4, 4), True)])
def test_broadcasting_add_and_mul_match_torch(a, b, ok):
    for op, fn in (("add", torch.add), ("mul", torch.mul)):
        try:
            ours = OPS[op].infer({}, [a, b])
        except ShapeError:
            ours = None
        theirs = runtime(lambda x: fn(x, torch.zeros(1, *b)), a)
        assert ours == theirs
        assert (ours is not None) == ok


@pytest.mark.parametrize("shape,out", [((5, 7, 7), 1), ((5, 7, 7), 3), ((5, 7, 9), [2, 4])])
def test_adaptive_pooling_matches_torch(shape, out):
    ours = static("adaptive_avgpool", shape, output_size=out)
    assert ours == runtime(lambda x: F.adaptive_avg_pool2d(x, out), shape)


def test_cat_and_split_match_torch():
    assert OPS["cat"].infer({"dim": 0}, [(3, 4, 4), (5, 4, 4)]) == (8, 4, 4)
    with pytest.raises(ShapeError):
        OPS["cat"].infer({"dim": 0}, [(3, 4, 4), (5, 2, 2)])
    parts = OPS["split"].infer({"sections": 2}, [(6, 4, 4)])
    assert list(parts) == [tuple(t.shape[1:]) for t in torch.chunk(torch.zeros(1, 6, 4, 4), 2, 1)]
    parts = OPS["split"].infer({"sections": [2, 4]}, [(6, 4, 4)])
    assert list(parts) == [tuple(t.shape[1:]) for t in torch.split(torch.zeros(1, 6, 4, 4), [2, 4], 1)]


@pytest.mark.parametrize("shape,new", [((12,), [12, 1, 1]), ((3, 2, 2), [12]), ((4, 3, 2), [2, 6, 2]),
                                       ((12,), [5, 1, 1]), ((4, 2, 2), [4, 2, 1])])
def test_reshape_rule_matches_torch(shape, new):
    ours = static("reshape", shape, shape=new)
    assert ours == runtime(lambda x: x.reshape(x.size(0), *new), shape)
