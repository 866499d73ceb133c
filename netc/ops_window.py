"""Windowed attention for hierarchical vision transformers (Swin, Swin-V2): registered into
`netc.ops.OPS` when `netc.ops` is imported.

Two primitives over channels-last maps `[H, W, C]` (what `permute([1, 2, 0])` makes of a
`[C, H, W]` map):

- `window_attention(heads, window, shift, version)`: multi-head self-attention within
  non-overlapping windows, optionally shifted cyclically, with a learned relative position
  bias; its module is a helper class whose parameter and buffer names are torchvision's
  (`qkv`, `proj`, `relative_position_bias_table`, `relative_position_index`; V2 also
  `logit_scale`, `cpb_mlp`, `relative_coords_table`), so checkpoints load unchanged;
- `patch_merge`: each 2x2 neighbourhood into the channels, `[H, W, C] -> [ceil(H/2),
  ceil(W/2), 4C]`, the first half of Swin's PatchMerging (its norm and linear are spec code).

Like every op, nothing here imports torch: modules and helpers are source text.
"""
from __future__ import annotations

import math

from netc.ops import HELPERS, Cost, OpSpec, P, lit, register
from netc.shapes import ShapeError, format_shape, no_lazy_form, pair

CPB_HIDDEN = 512  # width of Swin-V2's continuous position bias MLP (torchvision's, fixed)


def _needs_channels_last(op: str, shape) -> None:
    if len(shape) != 3:
        raise ShapeError("E304", f"`{op}` needs a channels-last map [H, W, C], got "
                                 f"{format_shape(shape)}",
                         hint="`permute([1, 2, 0])` turns a [C, H, W] map into [H, W, C]")


# ---- window_attention

def _padded(size: int, window: int) -> int:
    """The map is padded (bottom, right) to whole windows."""
    return -(-size // window) * window


def _window_attention_infer(args, ins):
    shape = ins[0]
    _needs_channels_last("window_attention", shape)
    c = shape[2]
    if c % args["heads"]:
        raise ShapeError("E309", f"`window_attention` heads={args['heads']} does not divide the "
                                 f"{c} channels of {format_shape(shape)}",
                         hint="heads must divide C")
    if args["version"] not in (1, 2):
        raise ShapeError("E308", f"`window_attention` version {args['version']} is not 1 or 2",
                         hint="1: Swin (scaled dot product, a bias table); 2: Swin-V2 "
                              "(cosine attention, a position-bias MLP)")
    for axis, w, s in zip(("height", "width"), pair(args["window"]), pair(args["shift"])):
        if args["version"] == 2 and w < 2:
            raise ShapeError("E308", f"`window_attention` version 2 needs windows of at least 2 "
                                     f"({axis} {w}): its relative coordinates are divided by "
                                     f"window - 1")
        if s >= w:
            raise ShapeError("E308", f"`window_attention` shift {s} is not smaller than the "
                                     f"window {w} ({axis})",
                             hint="Swin shifts by half a window: `shift = window // 2`")
    return shape


def _window_attention_module(args, ins):
    if ins is None:
        raise no_lazy_form("window_attention")
    cls = "ShiftedWindowAttention" if args["version"] == 1 else "ShiftedWindowAttentionV2"
    window = list(pair(args["window"]))
    shift = list(pair(args["shift"]))
    return (f"{cls}({ins[0][2]}, {window!r}, {shift!r}, {args['heads']}"
            f", attention_dropout={lit(float(args['attention_dropout']))}"
            f", dropout={lit(float(args['dropout']))})")


def _window_attention_cost(args, ins, out):
    h, w, c = ins[0]
    heads = args["heads"]
    wh, ww = pair(args["window"])
    grid = (2 * wh - 1) * (2 * ww - 1)  # relative offsets within a window
    n = wh * ww  # tokens per window
    tokens = _padded(h, wh) * _padded(w, ww)
    params = 3 * c * c + 3 * c + c * c + c  # qkv, proj (with biases)
    buffers = n * n  # relative_position_index
    macs = tokens * c * 3 * c + 2 * tokens * n * c + tokens * c * c
    if args["version"] == 1:
        params += grid * heads  # relative_position_bias_table
    else:
        params += heads + 2 * CPB_HIDDEN + CPB_HIDDEN + CPB_HIDDEN * heads  # logit_scale, cpb_mlp
        buffers += grid * 2  # relative_coords_table
        macs += grid * (2 * CPB_HIDDEN + CPB_HIDDEN * heads)
    return Cost(params=params, buffers=buffers, macs=macs, int64_buffers=n * n)


# log(100): the largest logit scale of cosine attention (written out: helpers import only torch)
_MAX_LOGIT_SCALE = repr(math.log(100.0))

_HELPER_WINDOW_ATTENTION = '''
class ShiftedWindowAttention(nn.Module):
    """Multi-head self-attention within windows of a channels-last map [N, H, W, C]
    (torchvision's Swin Transformer). The map is padded (bottom, right) to whole windows; with
    a shift it is rolled by -shift first, and positions that came from different regions of
    the map are kept apart by a -100 mask; nothing is shifted along an axis that one
    window covers.
    Each head adds a learned bias per relative position (a table of (2wh-1)(2ww-1) rows)."""

    def __init__(self, dim: int, window: List[int], shift: List[int], heads: int,
                 attention_dropout: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.shifted = shift[0] > 0 or shift[1] > 0
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.define_position_bias()
        self.register_buffer("relative_position_index", self.position_index())

    def define_position_bias(self) -> None:
        rows = (2 * self.window[0] - 1) * (2 * self.window[1] - 1)
        self.relative_position_bias_table = nn.Parameter(
            nn.init.trunc_normal_(torch.zeros(rows, self.heads), std=0.02))

    def position_index(self) -> torch.Tensor:
        """For each (query, key) pair of a window, the row of its offset (dy, dx) in the
        table: (dy + wh - 1) * (2ww - 1) + (dx + ww - 1)."""
        ys, xs = torch.meshgrid(torch.arange(self.window[0]), torch.arange(self.window[1]),
                                indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        dy = ys[:, None] - ys[None, :] + self.window[0] - 1
        dx = xs[:, None] - xs[None, :] + self.window[1] - 1
        return (dy * (2 * self.window[1] - 1) + dx).flatten()

    def position_bias(self) -> torch.Tensor:
        n = self.window[0] * self.window[1]
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        return self.qkv(x)

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q = q * float(q.size(-1)) ** -0.5
        return q.matmul(k.transpose(-2, -1))

    # torch.roll as two slices per axis: the ONNX exporter converts a roll by constant amounts
    # only, and these amounts depend on the map's size
    def roll_back(self, x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
        """torch.roll(x, (-sh, -sw), (1, 2)): row sh comes first."""
        x = torch.cat([x[:, sh:], x[:, :sh]], 1)
        return torch.cat([x[:, :, sw:], x[:, :, :sw]], 2)

    def roll_forward(self, x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
        """torch.roll(x, (sh, sw), (1, 2)): the last sh rows come first."""
        h, w = x.size(1), x.size(2)
        x = torch.cat([x[:, h - sh:], x[:, :h - sh]], 1)
        return torch.cat([x[:, :, w - sw:], x[:, :, :w - sw]], 2)

    def shift_mask(self, x: torch.Tensor, height: int, width: int, sh: int, sw: int) -> torch.Tensor:
        """[windows, n, n]: 0 where query and key come from the same region of the rolled
        map, -100 elsewhere. Regions: the rows before the last window, the last window's rows
        not wrapped around, the wrapped rows (likewise columns); no split along an unshifted axis."""
        rows = torch.arange(height, device=x.device)
        cols = torch.arange(width, device=x.device)
        # with a shift of 0 the second term is all 0 and the first is constant within each
        # window, so the mask is all 0, as for no split at all
        row_region = (rows >= height - self.window[0]).long() + (rows >= height - sh).long()
        col_region = (cols >= width - self.window[1]).long() + (cols >= width - sw).long()
        region = (row_region[:, None] * 3 + col_region[None, :]).to(x.dtype)
        region = region.view(height // self.window[0], self.window[0],
                             width // self.window[1], self.window[1])
        region = region.permute(0, 2, 1, 3).reshape(-1, self.window[0] * self.window[1])
        differ = region.unsqueeze(1) - region.unsqueeze(2)
        return differ.masked_fill(differ != 0, -100.0).masked_fill(differ == 0, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.size(0), x.size(1), x.size(2), x.size(3)
        wh, ww = self.window[0], self.window[1]
        pad_bottom = (wh - height % wh) % wh
        pad_right = (ww - width % ww) % ww
        x = F.pad(x, [0, 0, 0, pad_right, 0, pad_bottom])
        ph, pw = height + pad_bottom, width + pad_right
        nh, nw, n = ph // wh, pw // ww, wh * ww
        # no shift along an axis that one window covers. Arithmetic, not a branch on the size:
        # torch.export would keep the branch taken at its example size for every size (a roll
        # by 0 and an all-zero mask change nothing)
        sh = self.shift[0] * (1 - 1 // nh)
        sw = self.shift[1] * (1 - 1 // nw)
        if self.shifted:
            x = self.roll_back(x, sh, sw)
        windows = x.view(batch, nh, wh, nw, ww, channels).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(batch * nh * nw, n, channels)
        qkv = self.project_qkv(windows).reshape(batch * nh * nw, n, 3, self.heads,
                                                channels // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.scores(qkv[0], qkv[1]) + self.position_bias()
        if self.shifted:
            mask = self.shift_mask(x, ph, pw, sh, sw)
            attn = attn.view(batch, nh * nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.heads, n, n)
        attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
        y = attn.matmul(qkv[2]).transpose(1, 2).reshape(batch * nh * nw, n, channels)
        y = F.dropout(self.proj(y), p=self.dropout, training=self.training)
        y = y.view(batch, nh, nw, wh, ww, channels).permute(0, 1, 3, 2, 4, 5)
        y = y.reshape(batch, ph, pw, channels)
        if self.shifted:
            y = self.roll_forward(y, sh, sw)
        return y[:, :height, :width, :].contiguous()
'''

_HELPER_WINDOW_ATTENTION_V2 = '''
class ShiftedWindowAttentionV2(ShiftedWindowAttention):
    """Swin-V2's window attention (torchvision's ShiftedWindowAttentionV2): cosine attention
    scaled by a learned per-head logit scale (at most 100), the key bias held at zero, and the
    position bias 16 * sigmoid of a small MLP (`cpb_mlp`) of log-spaced relative coordinates."""

    def __init__(self, dim: int, window: List[int], shift: List[int], heads: int,
                 attention_dropout: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__(dim, window, shift, heads, attention_dropout, dropout)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones((heads, 1, 1))))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True),
                                     nn.Linear(512, heads, bias=False))
        with torch.no_grad():
            self.qkv.bias[dim:2 * dim].zero_()

    def define_position_bias(self) -> None:
        """Relative offsets (dy, dx) scaled to [-8, 8], then sign * log2(1 + |.|) / 3."""
        dy = torch.arange(-(self.window[0] - 1), self.window[0], dtype=torch.float32)
        dx = torch.arange(-(self.window[1] - 1), self.window[1], dtype=torch.float32)
        table = torch.stack(torch.meshgrid([dy, dx], indexing="ij")).permute(1, 2, 0)
        table = table.contiguous().unsqueeze(0)
        table[:, :, :, 0] /= self.window[0] - 1
        table[:, :, :, 1] /= self.window[1] - 1
        table *= 8
        table = torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0
        self.register_buffer("relative_coords_table", table)

    def position_bias(self) -> torch.Tensor:
        n = self.window[0] * self.window[1]
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.heads)
        bias = table[self.relative_position_index].view(n, n, -1)
        return 16 * torch.sigmoid(bias.permute(2, 0, 1).contiguous().unsqueeze(0))

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.qkv.bias
        if bias is not None:
            third = bias.numel() // 3
            bias = torch.cat([bias[:third], torch.zeros_like(bias[third:2 * third]),
                              bias[2 * third:]])
        return F.linear(x, self.qkv.weight, bias)

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        return attn * torch.clamp(self.logit_scale, max=MAX_LOGIT_SCALE).exp()
'''.replace("MAX_LOGIT_SCALE", _MAX_LOGIT_SCALE)

HELPERS["ShiftedWindowAttention"] = _HELPER_WINDOW_ATTENTION
HELPERS["ShiftedWindowAttentionV2"] = _HELPER_WINDOW_ATTENTION_V2

register(OpSpec(
    "window_attention",
    (P("heads", "pos"), P("window", "pair_pos"), P("shift", "pair_nonneg", 0),
     P("version", "int", 1), P("attention_dropout", "prob", 0.0), P("dropout", "prob", 0.0)),
    _window_attention_infer,
    "multi-head self-attention within `window`-sized windows of a channels-last map "
    "[H, W, C], shifted cyclically by `shift` (masked apart where regions meet), with a "
    "learned relative position bias; `version = 2` is Swin-V2's cosine attention with a "
    "position-bias MLP (torchvision's ShiftedWindowAttention / V2, keys included)",
    call=lambda args, xs, m, ins: f"{m}({xs[0]})", module=_window_attention_module,
    cost=_window_attention_cost,
    helpers=lambda args: (("ShiftedWindowAttention",) if args["version"] == 1 else
                          ("ShiftedWindowAttention", "ShiftedWindowAttentionV2"))))


# ---- patch_merge

def _patch_merge_infer(args, ins):
    shape = ins[0]
    _needs_channels_last("patch_merge", shape)
    h, w, c = shape
    return (-(-h // 2), -(-w // 2), 4 * c)


_HELPER_PATCH_MERGE = '''
def _swin_patch_merge(x: torch.Tensor) -> torch.Tensor:
    """[N, H, W, C] -> [N, ceil(H/2), ceil(W/2), 4C]: each 2x2 neighbourhood into the channels,
    in Swin's order (top-left, bottom-left, top-right, bottom-right); odd sizes are padded
    with zeros at the bottom and right."""
    x = F.pad(x, [0, 0, 0, x.size(2) % 2, 0, x.size(1) % 2])
    return torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
'''

# a leading underscore: no variable of a generated forward (named after labels) can hide it
HELPERS["_swin_patch_merge"] = _HELPER_PATCH_MERGE

register(OpSpec(
    "patch_merge", (), _patch_merge_infer,
    "each 2x2 neighbourhood of a channels-last map into its channels: [H, W, C] -> "
    "[ceil(H/2), ceil(W/2), 4C] in Swin's order (odd sizes padded with zeros), the "
    "space-to-depth step of Swin's PatchMerging",
    call=lambda args, xs, m, ins: f"_swin_patch_merge({xs[0]})",
    helpers=lambda args: ("_swin_patch_merge",)))
