"""`netc sweep` with a search sweeper (`hydra/sweeper=optuna`): the static pre-check stays in
front of the launcher, so a sampled variant that fails `netc check` is a failed trial with
its diagnostic and is never launched; single and multi-objective searches; the Pareto front.

These sweeps measure nothing (objective=macs or params, computed statically): no torch in
the jobs. One search runs in the default suite; the others in the slow suite."""
from __future__ import annotations

import json

import pytest

from conftest import SPECS
from test_sweep import netc_params, rows_of, sweep

pytest.importorskip("optuna")
pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

# specs/digits/digits_cnn.net: `depth` conv-pool stages on an 8x8 input; depth >= 4 pools a 1x1 map
# (E313). Optuna's integer range includes its end, so depth is drawn from 1..6: half invalid.
SEARCH = ["specs/digits/digits_cnn.net", "hydra/sweeper=optuna", "depth=range(1,6)",
          "width=choice(4,8,16,32)", "hydra.sweeper.sampler.seed=0"]


@pytest.fixture(scope="module")
def optuna_sweep(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("optuna") / "sweep"
    result = sweep(*SEARCH, "hydra.sweeper.n_trials=12", "objective=macs",
                   "hydra.sweeper.direction=minimize", f"hydra.sweep.dir={sweep_dir}")
    return result, sweep_dir


def test_optuna_search_checks_every_trial_and_never_launches_invalid_ones(optuna_sweep):
    result, sweep_dir = optuna_sweep
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # some trials are invalid
    rows = rows_of(sweep_dir)
    assert len(rows) == 12
    invalid = [r for r in rows if r["status"] == "invalid"]
    valid = [r for r in rows if r["status"] == "ok"]
    assert invalid and valid, "the seeded search should sample both regions"
    assert {r["depth"] for r in invalid} <= {4, 5, 6}
    assert {r["depth"] for r in valid} <= {1, 2, 3}
    for row in invalid:  # the diagnostic, in the row and in Optuna's log; no job ran
        assert row["error"].startswith("E313 pool-does-not-fit"), row
        job_dir = sweep_dir / str(row["job"])
        assert json.loads((job_dir / "result.json").read_text())["launched"] is False
        assert not (job_dir / "sweep.log").exists()
    assert output.count("Failed experiment: not launched: E313") == len(invalid)
    for row in valid:  # launched: a log, netc's numbers
        assert (sweep_dir / str(row["job"]) / "sweep.log").is_file()
        assert row["macs"] > 0
        assert row["objective"] == [float(row["macs"])]
        assert row["params"] == netc_params(SPECS / "digits" / "digits_cnn.net", depth=row["depth"],
                                             width=row["width"])
    # Optuna's own summary agrees with the table: the smallest valid variant
    best = min(valid, key=lambda r: r["macs"])
    summary = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_value: {float(best['macs'])}" in summary
    assert [r["variant"] for r in rows if r["pareto"]] == [best["variant"]]
    assert sorted(r["job"] for r in rows) == list(range(12))  # Hydra's numbering, no gaps


def test_optuna_results_have_one_column_per_swept_key(optuna_sweep):
    _, sweep_dir = optuna_sweep
    header = (sweep_dir / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["variant", "job", "depth", "width"]
    assert "overrides" not in header
    data = json.loads((sweep_dir / "results.json").read_text())
    assert data["columns"][:4] == ["variant", "job", "depth", "width"]
    assert all(isinstance(r["depth"], int) for r in data["rows"])


@pytest.mark.slow
def test_multi_objective_search_marks_the_pareto_front(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = sweep(*SEARCH, "hydra.sweeper.n_trials=12", "objective=[params,macs]",
                   "hydra.sweeper.direction=[minimize,minimize]", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 1, result.stdout + result.stderr
    rows = [r for r in rows_of(sweep_dir) if r["status"] == "ok"]
    front = [r for r in rows if r["pareto"]]
    assert front
    for row in rows:  # on the front exactly when no other row is at least as good in both
        dominated = any(o["params"] <= row["params"] and o["macs"] <= row["macs"]
                        and (o["params"], o["macs"]) != (row["params"], row["macs"])
                        for o in rows)
        assert row["pareto"] is (not dominated), row
    assert "solutions" in (sweep_dir / "optimization_results.yaml").read_text()
    assert (sweep_dir / "results.png").is_file()


@pytest.mark.slow
def test_optuna_dry_run_checks_the_sampled_trials_and_launches_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = sweep(*SEARCH, "hydra.sweeper.n_trials=8", "objective=macs",
                   "hydra.sweeper.direction=minimize", f"hydra.sweep.dir={sweep_dir}",
                   "--dry-run")
    assert result.returncode == 1, result.stdout + result.stderr  # invalid trials sampled
    assert "8 variants" in result.stdout and "dry run: nothing launched" in result.stdout
    assert "Key 'dry_run'" not in result.stderr
    assert not sweep_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    ([], "hydra/sweeper=optuna needs numbers back from each job: set objective="),
    (["objective=[val_acc,macs]", "measure=train", "hydra.sweeper.direction=maximize"],
     "objective names 2 column(s) (val_acc, macs) but hydra.sweeper.direction has 1"),
    (["objective=val_acc"], "objective: `val_acc` needs measure=train (or all)"),
])
def test_search_without_usable_objective_is_a_usage_error(tmp_path, args, message):
    result = sweep(*SEARCH, "hydra.sweeper.n_trials=2", *args, f"hydra.sweep.dir={tmp_path}/s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not list((tmp_path).glob("s/*/sweep.log"))  # no job ran
