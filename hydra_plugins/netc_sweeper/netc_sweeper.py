"""`hydra/sweeper=netc`: Hydra's basic sweeper (grid, `range()`, `choice()`, `glob()`,
`hydra.sweeper.params` in YAML, `max_batch_size`) that checks every variant with netc before
launching, records the invalid ones as rows of the sweep, and hands only the valid ones to the
configured launcher (basic, joblib, submitit_local, submitit_slurm, ...).

Hydra imports every module under `hydra_plugins` when it scans for plugins, so this module
imports nothing of netc at import time (and never torch); the work is in `netc.sweep`.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class NetcSweeperConf:
    _target_: str = "hydra_plugins.netc_sweeper.netc_sweeper.NetcSweeper"
    max_batch_size: Optional[int] = None  # launch at most this many jobs at a time
    params: Optional[Dict[str, str]] = None  # the sweep, as in hydra/sweeper=basic
    dry_run: bool = False  # expand and check the variants, print them, launch nothing


ConfigStore.instance().store(group="hydra/sweeper", name="netc", node=NetcSweeperConf,
                             provider="netc")


class NetcSweeper(BasicSweeper):
    """The basic sweeper's expansion; netc's static check between expansion and launch."""

    def __init__(self, max_batch_size: Optional[int] = None,
                 params: Optional[Dict[str, str]] = None, dry_run: bool = False) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.dry_run = dry_run

    def sweep(self, arguments: List[str]) -> Any:
        from netc.sweep.launch import run_sweeper

        return run_sweeper(self, arguments)
