"""Nothing of the checked input size is baked into generated code: a reshape takes the
sizes that follow the input from the tensor at run time, so a module built (and proven) at
one size runs at others, as torchvision's do."""
from __future__ import annotations

import pytest
import torch

import netc

SHUFFLE = """
net Shuffle() {
  input x: [6, 8, 8]
  y = x >> c1: conv(6, 3)
  a, b = split(y, 2)
  t = cat(b, a) >> reshape([6, 1, 64]) >> relu
  g = y >> gap >> flatten >> reshape([6, 1, 1]) >> sigmoid
  same = y >> reshape([6, 8, 8])
  out cat(t >> flatten, (same * g) >> reshape([384]))
}
"""


def reference(module, x):
    """The spec computed by hand, with the sizes of `x`."""
    y = module.c1(x)
    a, b = torch.chunk(y, 2, 1)
    t = torch.relu(torch.cat([b, a], 1).reshape(x.size(0), 6, 1, -1))
    g = torch.sigmoid(y.mean((2, 3))).reshape(x.size(0), 6, 1, 1)
    return torch.cat([t.flatten(1), (y * g).flatten(1)], 1)


@pytest.fixture(scope="module")
def shuffle(tmp_path_factory):
    path = tmp_path_factory.mktemp("poly") / "shuffle.net"
    path.write_text(SHUFFLE)
    return netc.build(path).eval()


@pytest.mark.parametrize("batch, size", [(1, 8), (3, 8), (2, 16), (3, 11)])
def test_reshapes_follow_the_input_size(shuffle, batch, size):
    x = torch.randn(batch, 6, size, size)
    with torch.no_grad():
        torch.testing.assert_close(shuffle(x), reference(shuffle, x))


def test_reshape_code_holds_no_spatial_size(tmp_path):
    path = tmp_path / "shuffle.net"
    path.write_text(SHUFFLE)
    forward = netc.generate_source(path).src.split("def forward", 1)[1]
    reshapes = [line.split("=", 1)[1].split("#")[0] for line in forward.splitlines()
                if ".reshape(" in line]
    assert len(reshapes) == 4
    for line in reshapes:
        assert "64" not in line and "384" not in line and "8, 8" not in line, line
