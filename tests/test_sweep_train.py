"""`measure=train`: each variant trained on scikit-learn's digits (bundled, no download),
validation accuracy per row, seeded and deterministic; `examples/train.py` runs the same
code and its loss goes down."""
from __future__ import annotations

import re
import subprocess

import pytest

from conftest import ROOT, SPECS
from test_sweep import PYTHON, rows_of, sweep

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")


def test_digits_training_sweep_finds_a_variant_above_95_percent(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = sweep("specs/digits/digits_cnn.net", "depth=1,2,4", "width=16", "measure=train",
                   "train.epochs=3", "objective=val_acc", f"hydra.sweep.dir={sweep_dir}",
                   "--sort=-val_acc")
    assert result.returncode == 1, result.stdout + result.stderr  # depth 4 is invalid
    rows = rows_of(sweep_dir)
    assert [r["status"] for r in rows] == ["ok", "ok", "invalid"]  # sorted, invalid last
    best = rows[0]
    assert best["val_acc"] >= 0.95, rows
    assert best["pareto"] is True and rows[1]["pareto"] is False
    for row in rows[:2]:
        assert row["epochs"] == 3 and len(row["history"]) == 3
        assert row["train_samples"] + row["val_samples"] == 1797
        assert row["val_loss"] < row["history"][0]["val_loss"]  # it learned
    assert rows[2]["error"].startswith("E313")
    assert "val acc" in result.stdout


def _tiny_model():
    from netc.api import build

    return build(SPECS / "digits" / "digits_cnn.net", width=4, depth=1)


def test_training_is_seeded_and_deterministic():
    from netc.sweep.train import fit, load_data

    data = load_data("digits", 0.2, seed=0)
    assert len(data.x_train) + len(data.x_val) == 1797
    assert data.x_train.shape[1:] == (1, 8, 8) and float(data.x_train.max()) <= 1.0
    assert sorted(set(data.y_val.tolist())) == list(range(10))  # stratified
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        results.append(fit(_tiny_model(), data, (1, 8, 8), epochs=2, seed=0)["history"])
    assert results[0] == results[1]
    assert results[0][1]["train_loss"] < results[0][0]["train_loss"]


def test_training_adapts_the_images_to_the_models_input():
    from netc.sweep.train import fit_input, load_data

    x = load_data().x_val[:4]
    assert fit_input(x, (3, 16, 16)).shape == (4, 3, 16, 16)  # grey RGB, resized
    assert fit_input(x, (64,)).shape == (4, 64)  # a vector model
    assert fit_input(x, (1, 8)) is None  # no sensible mapping
    assert fit_input(x, (10,)) is None


def test_example_training_script_loss_goes_down(tmp_path):
    result = subprocess.run([PYTHON, "examples/train.py", "train.epochs=3",
                             f"hydra.run.dir={tmp_path}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr  # no requires_grad or other warnings
    losses = [float(v) for v in re.findall(r"train loss ([0-9.]+)", result.stdout)]
    assert len(losses) == 3, result.stdout
    assert losses[0] > losses[1] > losses[2], losses
    accuracy = float(re.search(r"validation accuracy ([0-9.]+)%", result.stdout).group(1))
    assert accuracy > 90, result.stdout
    assert "6,186 parameters" in result.stdout  # specs/digits/digits_cnn.net, width 16, depth 2
