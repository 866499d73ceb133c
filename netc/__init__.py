"""netc: a compiler from `.net` network specs to PyTorch modules.

    import netc
    model = netc.build("specs/resnet50.net")            # an nn.Module
    problems = netc.check("specs/resnet50.net", num_classes=10)   # [] when valid

`netc.check` (and everything but `build`) never imports torch.
"""
from __future__ import annotations

from netc.api import build, check, compile, generate_source
from netc.diagnostics import Diagnostic, NetcError, Severity

__all__ = ["build", "check", "compile", "generate_source", "Diagnostic", "NetcError", "Severity"]
__version__ = "0.1.0"
