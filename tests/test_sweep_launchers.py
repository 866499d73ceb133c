"""`netc sweep` launchers (joblib, Ray, submitit), trustworthy latency (median, IQR, the
spread warning), Hydra's flags passed through, and the results' pieces in-process."""
from __future__ import annotations

import pytest

from test_sweep import rows_of, sweep

# a small sweep every launcher runs: 2 valid variants (trained 1 epoch, latency measured)
# and 1 invalid one (never launched)
SMALL = ["specs/digits/digits_cnn.net", "depth=1,2,4", "width=8", "measure=all", "train.epochs=1",
         "bench.runs=5", "bench.warmup=1", "bench.train_runs=1", "bench.threads=1"]


def check_small(result, sweep_dir):
    assert result.returncode == 1, result.stdout + result.stderr  # depth=4 is invalid
    rows = rows_of(sweep_dir)
    assert [r["depth"] for r in rows] == [1, 2, 4]
    assert [r["status"] for r in rows] == ["ok", "ok", "invalid"]
    for row in rows[:2]:
        assert 0 < row["val_acc"] <= 1 and row["epochs"] == 1
        assert row["latency_ms"] > 0 and row["latency_iqr_ms"] >= 0
        assert row["latency_runs"] == 5 and row["threads"] == 1 and row["batch_size"] == 1
        assert row["latency_spread"] == pytest.approx(row["latency_iqr_ms"] / row["latency_ms"],
                                                      abs=0.01)
    return rows


@pytest.mark.slow
def test_joblib_launcher_trains_and_measures(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("sklearn")
    sweep_dir = tmp_path / "sweep"
    result = sweep(*SMALL, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   f"hydra.sweep.dir={sweep_dir}")
    check_small(result, sweep_dir)
    assert "hydra/launcher=joblib" in result.stdout


@pytest.mark.slow
def test_ray_launcher_on_a_local_ray_instance(tmp_path):
    """hydra-ray-launcher starts a local Ray instance (2 CPUs) for the sweep and stops it
    when the process ends; about a minute, most of it Ray starting."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    pytest.importorskip("sklearn")
    sweep_dir = tmp_path / "sweep"
    result = sweep(*SMALL, "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
                   "+hydra.launcher.ray.init.include_dashboard=false",
                   f"hydra.sweep.dir={sweep_dir}")
    check_small(result, sweep_dir)
    assert "hydra/launcher=ray" in result.stdout


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    pytest.importorskip("sklearn")
    sweep_dir = tmp_path / "sweep"
    result = sweep(*SMALL, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                   f"hydra.sweep.dir={sweep_dir}")
    check_small(result, sweep_dir)
    assert (sweep_dir / ".submitit").is_dir()


@pytest.mark.parametrize("flag, expected", [
    ("--info", "Config search path"),
    pytest.param("--hydra-help", "Hydra (1.", marks=pytest.mark.slow),
    pytest.param("--cfg=job", "objective: null", marks=pytest.mark.slow),
])
def test_hydra_flags_pass_through(flag, expected):
    result = sweep("specs/simple_cnn.net", flag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout


def test_multirun_flag_is_accepted():
    result = sweep("-m", "specs/simple_cnn.net", "num_classes=10,100", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 variants, 2 valid" in result.stdout


# ---- in-process pieces

def test_quartiles_and_the_spread_warning():
    from netc.sweep.measure import quartiles, spread_warning

    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    quiet = {"latency_spread": 0.05, "reference_spread": 0.02, "load": 0.5}
    assert spread_warning(quiet, 0.1) is None
    noisy = {"latency_spread": 0.35, "reference_spread": 0.4, "load": 2.5}
    text = spread_warning(noisy, 0.1)
    assert "latency IQR 35% of the median" in text
    assert "reference kernel IQR 40%" in text and "load average 2.5 per core" in text


def test_measure_reports_median_iqr_threads_and_batch():
    torch = pytest.importorskip("torch")
    from netc.api import compile as compile_spec, lower
    from netc.sweep.config import BENCH_DEFAULTS
    from netc.sweep.measure import measure

    from conftest import SPECS

    compiled = compile_spec(SPECS / "digits" / "digits_cnn.net", width=4, depth=1)
    module, _ = lower(compiled)
    bench = {**BENCH_DEFAULTS, "runs": 8, "warmup": 1, "threads": 1, "train": False}
    row = measure(module, compiled.graph, bench)
    assert row["latency_runs"] == 8 and row["threads"] == 1 and row["batch_size"] == 1
    assert row["latency_ms"] > 0 and row["latency_iqr_ms"] >= 0
    assert row["reference_spread"] is not None
    assert "warning" in row  # None on a quiet machine, the reasons otherwise
    assert torch.get_num_threads() >= 1


def test_pareto_front_and_columns_per_swept_key():
    from netc.sweep.results import columns, mark_pareto, swept_keys

    rows = [{"status": "ok", "val_acc": 0.9, "macs": 10, "overrides": ["w=1", "input=8"]},
            {"status": "ok", "val_acc": 0.95, "macs": 30, "overrides": ["w=2", "input=8"]},
            {"status": "ok", "val_acc": 0.85, "macs": 20, "overrides": ["w=3", "input=8"]},
            {"status": "invalid", "overrides": ["w=4", "input=8"]}]
    mark_pareto(rows, {"objective": ["val_acc", "macs"], "direction": ["maximize", "minimize"]})
    assert [r["pareto"] for r in rows] == [True, True, False, None]
    mark_pareto(rows, {"objective": ["val_acc"]})  # maximised by default
    assert [r["pareto"] for r in rows] == [False, True, False, None]
    # `input` is also a result column (the input's shape): the swept key is `arg.input`
    assert swept_keys(rows) == {"w": "w", "input": "arg.input"}
    assert columns(rows)[:4] == ["variant", "job", "w", "arg.input"]


def test_option_typos_are_usage_errors_in_process(capsys):
    from netc.cli import main

    assert main(["sweep", "specs/digits/digits_cnn.net", "measure=trian"]) == 2
    assert "did you mean `train`?" in capsys.readouterr().err
    assert main(["sweep", "specs/digits/digits_cnn.net", "widht=8,16"]) == 2
    assert "did you mean `width`?" in capsys.readouterr().err
    assert main(["sweep", "specs/digits/digits_cnn.net", "train.lr=-1"]) == 2
    assert "train.lr: expected a positive number" in capsys.readouterr().err


def test_the_sweep_package_does_not_import_the_cli():
    import ast
    from pathlib import Path

    import netc.sweep

    for path in Path(netc.sweep.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "netc.cli", path
            if isinstance(node, ast.Import):
                assert all(a.name != "netc.cli" for a in node.names), path
