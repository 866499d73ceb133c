"""`netc sweep`: real Hydra multiruns with the basic launcher, the static check before launch,
the results table and plot, `--report`, usage errors, YAML sweep configs, and `_target_:
netc.build` in a Hydra config. (Search sweepers: test_sweep_search.py; training on digits:
test_sweep_train.py; joblib, Ray, submitit and latency: test_sweep_launchers.py.)

Each sweep here is a subprocess (a fresh Hydra); the heavier ones are in the slow suite."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SPECS

hydra = pytest.importorskip("hydra")

from netc.analysis import totals  # noqa: E402
from netc.compiler import compile_spec  # noqa: E402

PYTHON = sys.executable
CONFIGS = ROOT / "configs"


def sweep(*args, cwd=ROOT, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([PYTHON, "-m", "netc", "sweep", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def rows_of(sweep_dir: Path) -> list[dict]:
    return json.loads((sweep_dir / "results.json").read_text())["rows"]


def netc_params(spec: Path, **params) -> int:
    compiled = compile_spec(spec, params)
    assert compiled.ok, compiled.diagnostics
    return totals(compiled.graph).params


def in_process(*args) -> tuple[int, str]:
    """`netc sweep ARGS` in this process, for commands that stop before Hydra starts."""
    import contextlib
    import io

    from netc.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["sweep", *map(str, args)])
    return code, err.getvalue()


# simple_cnn: 2 x 3 variants; [3, 2, 2] collapses (the second 2x2 pool meets a 1x1 map)
CNN_ARGS = ["specs/simple_cnn.net", "num_classes=10,100", "image=[3,32,32],[3,48,48],[3,2,2]"]


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory):
    """One multirun with the basic launcher: 6 variants, 2 of them invalid."""
    sweep_dir = tmp_path_factory.mktemp("basic") / "sweep"
    result = sweep(*CNN_ARGS, f"hydra.sweep.dir={sweep_dir}")
    return result, sweep_dir


def test_dry_run_expands_checks_and_launches_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    tic = time.perf_counter()
    result = sweep(*CNN_ARGS, f"hydra.sweep.dir={sweep_dir}", "--dry-run")
    elapsed = time.perf_counter() - tic
    assert result.returncode == 1, result.stderr  # some variants are invalid
    assert "6 variants, 4 valid, 2 invalid" in result.stdout
    assert result.stdout.count("E313") == 2  # the collapsing pool, on each invalid row
    assert "dry run: nothing launched" in result.stdout
    assert not sweep_dir.exists()
    assert elapsed < 30  # about a second of work; generous for a loaded CI machine


def test_basic_launcher_one_row_per_variant_with_netc_numbers(basic_sweep):
    result, sweep_dir = basic_sweep
    assert result.returncode == 1, result.stderr  # two invalid variants
    rows = rows_of(sweep_dir)
    assert len(rows) == 6
    assert [r["variant"] for r in rows] == list(range(6))
    for row in rows:
        overrides = dict(o.split("=", 1) for o in row["overrides"])
        classes = int(overrides["num_classes"])
        image = json.loads(overrides["image"])
        if image == [3, 2, 2]:
            assert row["status"] == "invalid"
            assert row["error"].startswith("E313")
            assert "maxpool" in row["diagnostics"]
            assert row["params"] is None
            continue
        assert row["status"] == "ok", row
        assert row["params"] == netc_params(SPECS / "simple_cnn.net", num_classes=classes,
                                             image=image)
        assert row["output"] == str(classes)
        assert row["input"] == "x".join(map(str, image))
        assert row["min_input"] == "3x4x4" and row["rf"] == 10
    # Hydra's multirun layout: one directory per variant with its config, overrides and log
    assert (sweep_dir / "multirun.yaml").is_file()
    for row in rows:
        job_dir = sweep_dir / str(row["job"])
        assert (job_dir / ".hydra" / "overrides.yaml").is_file()
        assert (job_dir / ".hydra" / "config.yaml").is_file()
        assert (job_dir / "result.json").is_file()
        assert (job_dir / "sweep.log").is_file() == (row["status"] == "ok")
    for name in ("results.csv", "results.json", "results.png", "variants.json"):
        assert (sweep_dir / name).is_file(), name
    csv_lines = (sweep_dir / "results.csv").read_text().splitlines()
    # one column per swept key, then the results
    assert csv_lines[0].startswith("variant,job,num_classes,image,spec,status,params")
    assert len(csv_lines) == 7
    assert [r["num_classes"] for r in rows] == [10, 10, 10, 100, 100, 100]
    assert rows[0]["image"] == [3, 32, 32]
    assert "jobs done" in result.stderr  # the progress line
    assert "4 ok" in result.stdout


def test_report_rebuilds_table_and_plot_sorted(basic_sweep, tmp_path):
    _, sweep_dir = basic_sweep
    for name in ("results.csv", "results.json", "results.png"):
        (sweep_dir / name).unlink()
    code, err = in_process("--report", sweep_dir, "--sort=-params")  # no Hydra: in-process
    assert code == 1, err  # the invalid rows are still there
    rows = rows_of(sweep_dir)
    assert len(rows) == 6 and (sweep_dir / "results.png").is_file()
    params = [r["params"] for r in rows if r["params"] is not None]
    assert params == sorted(params, reverse=True)
    assert [r["status"] for r in rows[-2:]] == ["invalid", "invalid"]  # empty values last
    assert in_process("--report", sweep_dir, "--sort", "nope")[0] == 2
    assert in_process("--report", tmp_path)[0] == 2  # no jobs there


@pytest.mark.slow
def test_joblib_launcher_measures_latency_and_writes_artifacts(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = sweep("specs/resnet18.net", "layers=[1,1,1,1],[2,2,2,2]", "num_classes=10,100",
                   "image=[3,32,32]", "measure=latency", "artifact=true", "bench.runs=2",
                   "bench.warmup=1", "bench.train_runs=1", "bench.train_batch_size=2",
                   "bench.threads=1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hydra/launcher=joblib" in result.stdout
    rows = rows_of(sweep_dir)
    assert len(rows) == 4
    for row in rows:
        overrides = dict(o.split("=", 1) for o in row["overrides"])
        expected = netc_params(SPECS / "resnet18.net", layers=json.loads(overrides["layers"]),
                               num_classes=int(overrides["num_classes"]), image=[3, 32, 32])
        assert row["params"] == expected
        assert row["latency_ms"] > 0 and row["train_ms"] > 0
        assert row["threads"] == 1 and row["batch_size"] == 1
        assert Path(row["artifact"]).is_file() and row["artifact"].endswith("resnet18.pt")
    import torch

    first = rows[0]
    scripted = torch.jit.load(first["artifact"])
    out = scripted(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, int(dict(o.split("=") for o in first["overrides"])["num_classes"]))


@pytest.mark.slow
def test_sweep_over_spec_files_keeps_each_specs_defaults(tmp_path):
    result = sweep("spec=specs/simple_cnn.net,specs/resnet18.net", "num_classes=10",
                   "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 variants, 2 valid" in result.stdout
    # each keeps its own input size: simple_cnn 32x32 (2.12 M), resnet18 224x224 (11.2 M)
    assert "2.12 M" in result.stdout and "11.2 M" in result.stdout


def test_misspelt_parameter_is_a_usage_error_with_a_suggestion(tmp_path):
    code, err = in_process("specs/simple_cnn.net", "num_clases=10,100",
                           f"hydra.sweep.dir={tmp_path}/s")
    assert code == 2, err
    assert "did you mean `num_classes`?" in err
    assert not (tmp_path / "s").exists()  # nothing launched


@pytest.mark.parametrize("override, message", [
    ("measure=latensy", "measure: expected one of none, latency, train, all, got 'latensy'; "
                        "did you mean `latency`?"),
    ("measure=none,latensy", "did you mean `latency`?"),  # one bad value in a sweep
    ("bench.runz=3", "bench.runz: unknown; did you mean `bench.runs`?"),
    ("bench.runs=0", "bench.runs: expected a positive integer, got 0"),
    ("train.epoch=3", "train.epoch: unknown; did you mean `train.epochs`?"),
    ("train.data=mnist", "train.data: expected one of digits"),
    ("objective=val_accuracy", "objective: no column `val_accuracy`; did you mean `val_acc`?"),
])
def test_option_typos_are_usage_errors_before_launch(tmp_path, override, message):
    code, err = in_process("specs/simple_cnn.net", "num_classes=10,100", override,
                           f"hydra.sweep.dir={tmp_path}/s")
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_option_typo_in_a_sweep_config_is_a_usage_error(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "defaults: [netc_sweep, _self_]\nspec: specs/simple_cnn.net\n"
        "hydra:\n  sweeper:\n    params:\n      measure: none,latensy\n")
    code, err = in_process("-cd", tmp_path, "-cn", "bad", "--dry-run")
    assert code == 2, err
    assert "did you mean `latency`?" in err


@pytest.mark.slow
def test_input_option_resizes_the_first_input():
    result = sweep("specs/resnet18.net", "input=32,64", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "37.5 M" in result.stdout and "149 M" in result.stdout  # MACs at 32 and 64
    assert "3x32x32" in result.stdout and "3x64x64" in result.stdout


def test_usage_errors_exit_two(tmp_path):
    assert in_process("specs/nope.net", "a=1")[0] == 2
    assert in_process("--dry-run")[0] == 2  # no spec
    assert in_process("specs/simple_cnn.net", "oops")[0] == 2  # not an override
    assert in_process("-cn", "nothing", "-cd", tmp_path)[0] == 2
    assert in_process("specs/simple_cnn.net", "--sort=nope")[0] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name, count, spec", [("resnet_depth_width", 8, "resnet50.net"),
                                              ("densenet_growth", 4, "densenet121.net")])
def test_shipped_sweep_configs_expand_and_are_valid(name, count, spec):
    if not (SPECS / spec).is_file():
        pytest.skip(f"specs/{spec} not shipped")
    result = sweep("-cd", "configs", "-cn", name, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{count} variants, {count} valid, 0 invalid" in result.stdout


@pytest.mark.slow
def test_resnet_depth_width_config_has_torchvisions_numbers():
    result = sweep("-cd", "configs", "-cn", "resnet_depth_width", "--dry-run")
    # resnet50, resnet101, wide_resnet50_2, wide_resnet101_2 (torchvision's parameter counts)
    for count in ("25.6 M", "44.5 M", "68.9 M", "127 M"):
        assert count in result.stdout


# ---- in-process pieces

def test_spec_parameters_literal_derived_and_alias_defaults():
    from netc.sweep import spec_parameters

    resnet = spec_parameters(SPECS / "resnet18.net")
    assert resnet.values["block"] == "BasicBlock"
    assert resnet.values["layers"] == [2, 2, 2, 2]
    assert resnet.values["num_classes"] == 1000
    assert resnet.inputs == {"image": [3, 224, 224]}
    if (SPECS / "densenet121.net").is_file():
        dense = spec_parameters(SPECS / "densenet121.net")
        assert dense.values["growth_rate"] == 32
        assert dense.values["num_init_features"] is None  # 2 * growth_rate: the spec's
        assert dense.inputs == {"image": None}  # [3, size, size]


def test_labels_show_what_varies():
    from netc.sweep import labels

    names, common = labels([["a=1", "b=2", "measure=latency"], ["a=2", "b=2", "measure=latency"]])
    assert names == ["a=1", "a=2"]
    assert common == ["b=2", "measure=latency"]


def test_hydra_instantiate_netc_build_from_a_config():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model.spec=" + str(SPECS / "resnet18.net"),
                                          "~model.width", "~model.depth",
                                          "+model.layers=[1,1,1,1]", "+model.num_classes=10",
                                          "+model.input_shape=[3,32,32]"])
    model = instantiate(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    compiled = compile_spec(SPECS / "resnet18.net", {"num_classes": 10, "layers": [1, 1, 1, 1]},
                            input_shape=(3, 32, 32))
    assert params == totals(compiled.graph).params
    import torch

    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_report_marks_jobs_without_results_missing(tmp_path):
    from netc.sweep import collect

    for number, overrides in enumerate((["a=1"], ["a=2"])):
        hydra_dir = tmp_path / str(number) / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (tmp_path / "0" / "result.json").write_text(json.dumps(
        {"job": 0, "overrides": ["a=1"], "status": "ok", "params": 5}))
    rows = collect(tmp_path)  # a cluster run cut short: no variants.json, one job unfinished
    assert [(r["overrides"], r["status"], r["params"]) for r in rows] == [
        (["a=1"], "ok", 5), (["a=2"], "missing", None)]
