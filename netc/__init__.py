"""netc: a compiler from `.net` network specs to PyTorch modules.

    import netc
    model = netc.build("specs/resnet50.net")            # an nn.Module
    problems = netc.check("specs/resnet50.net", num_classes=10)   # [] when valid
    print(netc.summary("specs/resnet50.net"))            # shapes, params, MACs, receptive fields

`netc.check` (and everything but `build`) never imports torch.
"""
from __future__ import annotations

from netc.api import build, check, compile, generate_source, list_models, summary
from netc.diagnostics import Diagnostic, NetcError, Severity, WeightsMismatch

__all__ = ["build", "check", "compile", "generate_source", "list_models", "summary", "Diagnostic", "NetcError",
           "Severity", "WeightsMismatch"]
__version__ = "0.1.0"
