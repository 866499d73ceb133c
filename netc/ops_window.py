"""Windowed attention for hierarchical vision transformers (Swin, Swin-V2): registered into
`netc.ops.OPS` when `netc.ops` is imported."""
from __future__ import annotations
