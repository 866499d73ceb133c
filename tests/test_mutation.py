"""`netc check` flags exactly the mutants of the shipped specs that PyTorch rejects
(see tests/mutation.py). CI judges a deterministic sample; `NETC_MUTANTS=all` judges all."""
from __future__ import annotations

import os

import pytest

from mutation import judge, mutants

ALL = mutants()
STEP = 1 if os.environ.get("NETC_MUTANTS") == "all" else 6
SAMPLE = ALL[::STEP]


def test_there_are_many_mutants_of_every_kind():
    assert len(ALL) >= 250
    kinds = {m.description.split(": ", 1)[1] for m in ALL if "->" not in m.description}
    assert {"drop projection shortcut", "break group count"} <= kinds


@pytest.mark.parametrize("mutant", SAMPLE, ids=lambda m: f"{m.target}({m.spec}):{m.description}")
def test_netc_check_agrees_with_pytorch(mutant, tmp_path):
    verdict = judge(mutant, tmp_path)
    assert verdict.agrees, (f"netc says {verdict.netc_errors or 'ok'}, PyTorch says "
                            f"{'ok' if verdict.torch_ok else verdict.torch_error}")
