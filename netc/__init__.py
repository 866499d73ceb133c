"""netc: a compiler from `.net` network specs to PyTorch modules.

    import netc
    model = netc.build("specs/resnet50.net")            # an nn.Module
    problems = netc.check("specs/resnet50.net", num_classes=10)   # [] when valid
    print(netc.summary("specs/resnet50.net"))            # shapes, params, MACs, receptive fields

`netc.check` (and everything but `build`) never imports torch.
"""
from __future__ import annotations

import importlib

# Loaded on first use (PEP 562), so that `import netc.cli` for `netc --help` or `netc check`
# costs only what that command runs.
_EXPORTS = {"build": "netc.api", "check": "netc.api", "compile": "netc.api",
            "generate_source": "netc.api", "summary": "netc.api", "list_models": "netc.api",
            "Diagnostic": "netc.diagnostics", "NetcError": "netc.diagnostics",
            "Severity": "netc.diagnostics", "WeightsMismatch": "netc.diagnostics"}

__all__ = ["build", "check", "compile", "generate_source", "list_models", "summary",
           "Diagnostic", "NetcError", "Severity", "WeightsMismatch"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module 'netc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
