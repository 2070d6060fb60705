"""The reliability diagram: a real PNG beside the numbers it draws, and logged with a photo
model's other reports when the model was calibrated."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from fmnist.config import Limits, from_yaml
from fmnist.reports.calibration import BINS, write_reliability
from fmnist.reports.photos import log_photo_reports
from fmnist.training.calibration import fit_temperature, reliability, scaled
from tests.conftest import PHOTOS

CLASSES = ("pants", "shoes", "t-shirt")


def overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated rows with labels drawn from them, then sharpened (logs times 3)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(len(CLASSES)), n)
    labels = np.minimum((rng.random((n, 1)) > p.cumsum(1)).sum(1), len(CLASSES) - 1)
    return scaled(p, 1 / 3), labels


def test_reliability_png_and_csv_hold_both_models(tmp_path):
    before, labels = overconfident(400)
    t = fit_temperature(before, labels)
    after = scaled(before, t)
    png, table = write_reliability(before, after, labels, t, tmp_path)
    assert png.name == "reliability.png" and matplotlib.image.imread(png).shape[1] > 500
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == BINS
    assert sum(int(r["count_before"]) for r in rows) == sum(int(r["count_after"]) for r in rows) == len(labels)
    assert [int(r["count_after"]) for r in rows] == reliability(after, labels, BINS)[2].tolist()


def test_photo_reports_log_the_reliability_diagram_with_a_calibration(store, tmp_path):
    files = [f for c in CLASSES for f in sorted((PHOTOS / c).glob("*.jpg"))[:2]]
    before, labels = overconfident(len(files), seed=1)
    history = {"loss": [1.0, 0.8], "accuracy": [0.5, 0.6], "val_loss": [1.1, 0.9], "val_accuracy": [0.4, 0.5]}
    limits = from_yaml(Limits, "limits/default.yaml")
    mlflow.set_experiment("reliability")
    with mlflow.start_run() as with_it:
        log_photo_reports(history, labels, scaled(before, 2.0), CLASSES, files, limits, 4, (before, 2.0))
    with mlflow.start_run() as without:
        log_photo_reports(history, labels, before, CLASSES, files, limits, 4)
    names = lambda run: {Path(a.path).name for a in MlflowClient().list_artifacts(run.info.run_id, "reports")}  # noqa: E731
    assert {"reliability.png", "reliability.csv", "confusion.png", "mistakes.png"} <= names(with_it)
    assert "reliability.png" not in names(without) and "confusion.png" in names(without)
    assert "report_error" not in mlflow.get_run(with_it.info.run_id).data.tags
