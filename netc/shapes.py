"""Static shapes: per-sample tensor shapes and the arithmetic of convolution and pooling.

Shapes are tuples of ints without the batch: `(C, H, W)` for feature maps, `(F,)` after
`flatten`. A `Multi` holds the several results of an op such as `split`. Pure Python;
nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

Shape = tuple[int, ...]


class Multi(tuple):
    """The shapes of an op with several results (each is taken out with `getitem`)."""


def format_shape(shape) -> str:
    if shape is None:
        return "[?]"
    if isinstance(shape, Multi):
        return "(" + ", ".join(format_shape(s) for s in shape) + ")"
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass
class ShapeError(Exception):
    """A shape rule's objection; the elaborator turns it into a located Diagnostic."""

    code: str
    message: str
    hint: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        return self.message


def no_lazy_form(op: str) -> ShapeError:
    """The objection of a layer whose constructor needs its input's shape (PyTorch has no
    `Lazy...` form of it) when the module is lowered with `lazy=True`."""
    return ShapeError("E304", f"`{op}` has no lazy form")


def pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_output_size(n: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((n + 2p - d(k-1) - 1) / s) + 1, as in the PyTorch docs."""
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_size(n: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """PyTorch's pooling size: like conv, but with ceil_mode the last window must start
    inside the input or its left padding (`pooling_output_shape` in ATen)."""
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= n + padding:
        out -= 1
    return out


def size_formula(n: int, kernel: int, stride: int, padding: int, dilation: int,
                 ceil_mode: bool = False) -> str:
    """The output-size formula written out with the numbers, for diagnostics."""
    rounding = "ceil" if ceil_mode else "floor"
    dil = f"{dilation}*({kernel} - 1)" if dilation != 1 else f"({kernel} - 1)"
    out = (pool_output_size(n, kernel, stride, padding, dilation, ceil_mode))
    return f"{rounding}(({n} + 2*{padding} - {dil} - 1)/{stride}) + 1 = {out}"


def broadcast(shapes: list[Shape], verb: str) -> Shape:
    """The common shape of elementwise operands (size-1 dims stretch, as in PyTorch)."""
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        listed = " and ".join(format_shape(s) for s in shapes)
        raise ShapeError("E304", f"cannot {verb} {listed}: ranks differ")
    result = list(shapes[0])
    for shape in shapes[1:]:
        for axis, (a, b) in enumerate(zip(result, shape)):
            if a == b or b == 1:
                continue
            if a == 1:
                result[axis] = b
                continue
            listed = " and ".join(format_shape(s) for s in shapes)
            if axis == 0:
                raise ShapeError("E301", f"cannot {verb} {listed}: channels differ",
                                 hint="a projection (1x1 conv) is needed where channels change")
            raise ShapeError("E302", f"cannot {verb} {listed}: spatial sizes differ",
                             hint="the operands were downsampled differently; check strides")
    return tuple(result)

