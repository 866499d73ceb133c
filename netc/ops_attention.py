"""Attention within groups of tokens with a learned relative-position bias (MaxViT's block
and grid attention): registered into `netc.ops.OPS` when `netc.ops` is imported.

The op works on groups of tokens `[G, P, D]` (G windows of P = size * size tokens each, as a
spec makes them with `reshape` and `permute`); its module is a helper class written into the
generated file, with the parameter and buffer names of torchvision's
`RelativePositionalMultiHeadAttention` (`to_qkv`, `merge`, `relative_position_bias_table`,
`relative_position_index`)."""
from __future__ import annotations

from netc.ops import HELPERS, P, Cost, OpSpec, ShapeError, format_shape, register
from netc.shapes import no_lazy_form

_HELPER = '''
class RelativePositionAttention(nn.Module):
    """Multi-head self-attention within each group of size*size tokens [B, G, P, D], with a
    learned bias per head and relative offset (MaxViT). Keys as torchvision's."""

    def __init__(self, dim: int, head_dim: int, size: int) -> None:
        super().__init__()
        self.heads = dim // head_dim
        self.head_dim = head_dim
        self.length = size * size
        self.scale = dim ** -0.5  # of the whole width, as torchvision scales
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.merge = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            nn.init.trunc_normal_(torch.empty((2 * size - 1) ** 2, self.heads), std=0.02))
        # for each pair of positions (i, j) in a window, the row of their offset in the table
        rows = torch.arange(size).repeat_interleave(size)
        cols = torch.arange(size).repeat(size)
        dy = rows[:, None] - rows[None, :] + size - 1
        dx = cols[:, None] - cols[None, :] + size - 1
        self.register_buffer("relative_position_index", dy * (2 * size - 1) + dx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, p, d = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q = q.reshape(b, g, p, self.heads, self.head_dim).transpose(2, 3)
        k = k.reshape(b, g, p, self.heads, self.head_dim).transpose(2, 3) * self.scale
        v = v.reshape(b, g, p, self.heads, self.head_dim).transpose(2, 3)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        bias = bias.reshape(self.length, self.length, -1).permute(2, 0, 1)
        attention = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) + bias, dim=-1)
        out = torch.matmul(attention, v).transpose(2, 3).reshape(b, g, p, d)
        return self.merge(out)
'''

HELPERS["RelativePositionAttention"] = _HELPER


def _infer(args, ins):
    shape = ins[0]
    if len(shape) != 3:
        raise ShapeError("E304", f"`relative_attention` attends within groups of tokens "
                                 f"[G, P, D], got {format_shape(shape)}",
                         hint="partition a map into windows first: reshape, permute, reshape")
    _, length, dim = shape
    size = args["size"]
    if length != size * size:
        raise ShapeError("E311", f"`relative_attention` size {size} needs groups of "
                                 f"{size * size} tokens, got {length} in {format_shape(shape)}")
    if dim % args["head_dim"]:
        raise ShapeError("E309", f"`relative_attention` head_dim={args['head_dim']} does not "
                                 f"divide the width {dim}", hint="head_dim must divide D")
    return shape


def _module(args, ins):
    if ins is None:
        raise no_lazy_form("relative_attention")
    return f"RelativePositionAttention({ins[0][2]}, {args['head_dim']}, {args['size']})"


def _cost(args, ins, out):
    groups, length, dim = ins[0]
    heads = dim // args["head_dim"]
    params = 4 * dim * dim + 4 * dim + (2 * args["size"] - 1) ** 2 * heads
    macs = groups * (4 * length * dim * dim + 2 * length * length * dim)
    return Cost(params=params, buffers=length * length, macs=macs,
                int64_buffers=length * length)  # relative_position_index


register(OpSpec(
    "relative_attention", (P("head_dim", "pos"), P("size", "pos")), _infer,
    "multi-head self-attention within each group of size*size tokens [G, P, D], with a "
    "learned bias per head and relative offset (MaxViT's block and grid attention)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_module, cost=_cost,
    helpers=lambda args: ("RelativePositionAttention",)))
