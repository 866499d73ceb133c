"""`netc sweep`: Hydra multiruns over variants of a spec, one row and one job directory each,
every variant checked statically before anything is launched.

    netc sweep specs/resnet18.net 'layers=[2,2,2,2],[3,4,6,3]' width_per_group=64,128
    netc sweep specs/simple_cnn.net image='[1,8,8]' measure=train      # digits accuracy
    netc sweep specs/digits/digits_cnn.net hydra/sweeper=optuna 'depth=range(1,6)' \
        measure=train objective=val_acc hydra.sweeper.direction=maximize
    netc sweep --report multirun/2026-05-01/12-00-00

One module per concern, in the order a sweep uses them:

- `config`: netc's options and their schema (`measure`, `bench.*`, `train.*`, `objective`),
  and the spec's parameters as Hydra's primary config `netc_sweep` (ConfigStore), so that
  overrides are Hydra's and a misspelt key is caught.
- `precheck`: a variant's composed config compiled with netc (no torch): ok, or invalid
  with its diagnostic. An invalid variant is a row, never a job.
- `launch`: the job (Hydra's task function), the netc sweeper's expand-check-launch
  (`hydra/sweeper=netc`, `hydra_plugins/netc_sweeper`), the same check in front of any
  other sweeper's launcher (`hydra/sweeper=optuna`: an invalid trial is a failed trial, not
  launched), progress, and the hand-off to `@hydra.main` (ANCHORS 8.2).
- `measure` and `train`: in the job's process, latency (median and IQR, interleaved with a
  reference kernel, with a warning when the spread or the load is high), a training step,
  and training on scikit-learn's digits for validation accuracy.
- `results`: rows rebuilt from the job directories' `result.json` (so `--report DIR`
  works after a cluster run), one column per swept key, the Pareto front, the table,
  `results.csv`, `results.json` and `results.png`.
- `cli`: `netc sweep`'s flags and the checks before Hydra starts (exit 2).

netc/cli.py imports this package (lazily); nothing here imports netc.cli. Nothing imports
torch until a job builds, trains or measures a model.
"""
from __future__ import annotations

import importlib

# name -> module, resolved on first use (importing the package itself stays cheap)
_EXPORTS = {
    "add_arguments": "cli", "run_cli": "cli",
    "spec_parameters": "config", "read_spec_parameters": "config", "primary_config": "config",
    "escape": "config", "escape_override": "config", "UsageError": "config",
    "BENCH_DEFAULTS": "config", "TRAIN_DEFAULTS": "config", "OPTIONS": "config",
    "check_variant": "precheck", "static_stats": "precheck", "_memory_problem": "precheck",
    "job": "launch", "run_sweeper": "launch", "STATE": "launch",
    "measure": "measure", "fit": "train", "load_data": "train",
    "collect": "results", "labels": "results", "report": "results", "sort_rows": "results",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netc.sweep' has no attribute '{name}'")
    return getattr(importlib.import_module(f"netc.sweep.{module}"), name)
