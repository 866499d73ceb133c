"""A conv whose weight is kept in oneDNN's own layout: the `prepack_weights` pass of
`netc.optimize`, for the live module of `netc.build(spec, optimize=True)`.

oneDNN's fused convolution (`torch.ops.mkldnn._convolution_pointwise`, which the optimised
source calls) reorders a plain weight into its blocked layout on every call; at batch 1 that
reorder costs more than the fusion saves (bench/bench_optimize.py). Reordered once here, the
weight is an opaque tensor, so the module keeps the plain weight beside it: the state_dict,
load_state_dict, pickling and deep copies see only the plain one.
"""
from __future__ import annotations

import torch
from torch import nn


class PrepackedConv2d(nn.Conv2d):
    """An `nn.Conv2d` whose `weight` is oneDNN's reordered copy of `plain_weight`."""

    @classmethod
    def convert(cls, conv: nn.Conv2d, padding, stride, dilation) -> "PrepackedConv2d":
        """`conv` itself, changed in place (its submodule path and bias stay)."""
        conv.__class__ = cls
        conv.pack_args = (list(padding), list(stride), list(dilation))
        conv.plain_weight = conv._parameters.pop("weight").detach()
        conv._pack()
        return conv

    def _pack(self) -> None:
        padding, stride, dilation = self.pack_args
        with torch.no_grad():
            self.weight = torch.ops.mkldnn._reorder_convolution_weight(
                self.plain_weight, padding, stride, dilation, self.groups, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # called as a plain layer
        return self._conv_forward(x, self.plain_weight, self.bias)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "weight"] = self.plain_weight
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + "weight"
        if key in state_dict:
            value = state_dict[key]
            if value.shape != self.plain_weight.shape:
                error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{tuple(value.shape)}, the shape in the current model is "
                                  f"{tuple(self.plain_weight.shape)}.")
            else:
                with torch.no_grad():
                    self.plain_weight.copy_(value)
                self._pack()
        elif strict:
            missing_keys.append(key)
        rest = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def __getstate__(self):
        state = super().__getstate__().copy()
        state.pop("weight", None)  # opaque: no storage to copy or pickle; packed again
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._pack()
