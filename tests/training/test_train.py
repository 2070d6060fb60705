"""A real `fmnist.train` run on a subset, read back from a temporary MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fmnist.config import Config, validate
from fmnist.config.loading import compose
from fmnist.training.data import load_splits
from fmnist.training.run import train

OVERRIDES = ["experiment=quick", "data.subset=2000", "trainer.epochs=2", "trainer.verbose=0", "seed=7"]


@pytest.fixture
def run_id(store) -> str:
    return train(validate(Config, compose("train", OVERRIDES)))


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_run_has_params_curves_and_summary(run_id):
    client = MlflowClient()
    run = client.get_run(run_id)
    p, m = run.data.params, run.data.metrics
    assert p["model.conv_blocks.0.filters"] == "16" and p["trainer.epochs"] == "2" and p["data.subset"] == "2000"
    assert p["seed"] == "7" and run.data.tags["experiment"] == "quick"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        steps = [h.step for h in client.get_metric_history(run_id, key)]
        assert sorted(set(steps)) == [1, 2]  # val_accuracy's summary value sits at the last step
    assert 0.5 < m["test_accuracy"] <= 1 and 0.5 < m["val_accuracy"] <= 1
    assert m["overfit_gap"] == pytest.approx(m["train_accuracy"] - m["val_accuracy"])
    assert "config.yaml" in [a.path for a in client.list_artifacts(run_id)]


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_logged_model_reproduces_test_accuracy(run_id):
    model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    s = load_splits(subset=2000, seed=7)
    acc = float(np.mean(model.predict(s.x_test, verbose=0).argmax(1) == s.y_test))
    assert acc == pytest.approx(mlflow.get_run(run_id).data.metrics["test_accuracy"], abs=1e-6)


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_same_seed_same_metrics(store):
    cfg = validate(Config, compose("train", OVERRIDES))
    a, b = (mlflow.get_run(train(cfg)).data.metrics for _ in range(2))
    for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
        assert a[key] == b[key]


@pytest.mark.slow
def test_cli_quick_run_into_env_store(tmp_path):
    """`python -m fmnist.train experiment=quick` honours MLFLOW_TRACKING_URI, as MLflow does."""
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    out = subprocess.run([sys.executable, "-m", "fmnist.train", "experiment=quick", "trainer.verbose=0"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    assert out.returncode == 0, out.stderr[-2000:]
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("fmnist").experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics["test_accuracy"] > 0.5
    assert not (tmp_path / "mlflow.db").exists()
