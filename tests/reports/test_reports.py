"""Reports from a real (tiny) train run, read back from a temporary MLflow store: every
picture is a real PNG and the data behind it agrees with the run's logged metrics."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import matplotlib.image
import mlflow
import numpy as np
import pytest
from google.protobuf import text_format
from mlflow.tracking import MlflowClient
from tensorboard.plugins.projector import ProjectorConfig

from fmnist.config import Config, ReportConfig, from_yaml, validate
from fmnist.config.loading import checked, compose, renamed
from fmnist.errors import ConfigError
from fmnist.reports import log_run_reports, log_sweep_reports
from fmnist.reports.redraw import redraw
from fmnist.training.data import CLASS_NAMES, load_splits
from fmnist.training.run import train
from tests.conftest import mlflow_store

EMBED, TSNE, MISTAKES, SUBSET, SEED = 200, 60, 12, 1000, 5
OVERRIDES = ["experiment=quick", f"data.subset={SUBSET}", "trainer.epochs=1", f"seed={SEED}",
             f"report.embed_sample={EMBED}", f"report.tsne_sample={TSNE}", f"report.mistakes={MISTAKES}"]
PNGS = ["curves.png", "confusion.png", "mistakes.png", "embeddings.png"]
DATA = ["curves.csv", "confusion.json", "per_class.csv", "mistakes.csv", "embeddings.csv",
        "projector/tensors.tsv", "projector/metadata.tsv", "projector/sprite.png", "projector/projector_config.pbtxt"]


@dataclass(frozen=True)
class Trained:
    run_id: str
    tmp: Path

    @property
    def artifacts(self) -> Path:
        """The run's artifact folder on disk (the store is local)."""
        return Path(urlparse(mlflow.get_run(self.run_id).info.artifact_uri).path)

    @property
    def reports(self) -> Path:
        return self.artifacts / "reports"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """One train run for the whole module (training is the slow part), in its own store."""
    tmp = tmp_path_factory.mktemp("reports")
    with mlflow_store(tmp):
        yield Trained(train(validate(Config, compose("train", OVERRIDES))), tmp)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def assert_png(path: Path, min_side: int = 200, max_side: int = 4000) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    image = matplotlib.image.imread(path)
    h, w = image.shape[:2]
    assert min_side <= h <= max_side and min_side <= w <= max_side, f"{path.name}: {w}x{h}"
    assert image.std() > 0.01, f"{path.name} is blank"
    return image


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_every_report_is_logged_as_png_with_its_data(trained):
    for name in PNGS:
        assert_png(trained.reports / name)
    for name in DATA:
        assert (trained.reports / name).stat().st_size > 0, name
    assert mlflow.get_run(trained.run_id).data.metrics["report_seconds"] > 0


def test_confusion_counts_sum_to_test_set_and_diagonal_is_logged_accuracy(trained):
    data = json.loads((trained.reports / "confusion.json").read_text())
    counts = np.array(data["counts"])
    assert counts.shape == (10, 10) and data["class_names"] == list(CLASS_NAMES)
    assert counts.sum() == data["evaluated"] == 10000  # the test set is never subsampled
    logged = mlflow.get_run(trained.run_id).data.metrics["test_accuracy"]
    assert np.trace(counts) / counts.sum() == pytest.approx(logged, abs=1e-6)
    assert np.allclose(np.array(data["normalized"]).sum(1), 1, atol=1e-5)
    per_class = read_csv(trained.reports / "per_class.csv")
    assert [r["class"] for r in per_class] == list(CLASS_NAMES)
    for i, row in enumerate(per_class):
        assert float(row["recall"]) == pytest.approx(counts[i, i] / counts[i].sum(), abs=1e-5)
        assert int(row["support"]) == counts[i].sum()


def test_mistakes_are_misclassified_and_most_confident_first(trained):
    rows = read_csv(trained.reports / "mistakes.csv")
    assert len(rows) == MISTAKES
    confidence = [float(r["confidence"]) for r in rows]
    assert confidence == sorted(confidence, reverse=True)
    index = np.array([int(r["test_index"]) for r in rows])
    model = mlflow.keras.load_model(f"runs:/{trained.run_id}/model")
    splits = load_splits(subset=SUBSET, seed=SEED)
    predicted = model.predict(splits.x_test[index], verbose=0).argmax(1)
    assert np.array_equal(predicted, [int(r["predicted"]) for r in rows])
    assert np.array_equal(splits.y_test[index], [int(r["true"]) for r in rows])
    assert (predicted != splits.y_test[index]).all(), "the grid may show only mistakes"


def test_projector_has_one_metadata_row_per_embedded_image(trained):
    folder = trained.reports / "projector"
    meta = (folder / "metadata.tsv").read_text().splitlines()
    assert meta[0].split("\t") == ["test_index", "label", "predicted", "correct"]
    assert len(meta) - 1 == EMBED
    assert {line.split("\t")[1] for line in meta[1:]} <= set(CLASS_NAMES)
    tensors = np.loadtxt(folder / "tensors.tsv", delimiter="\t")
    assert tensors.shape == (EMBED, 32)  # the quick model's last dense layer has 32 units
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), ProjectorConfig())
    embedding = config.embeddings[0]
    assert all((folder / p).is_file() for p in (embedding.tensor_path, embedding.metadata_path,
                                               embedding.sprite.image_path))
    side = math.ceil(math.sqrt(EMBED)) * 28
    assert matplotlib.image.imread(folder / "sprite.png").shape[:2] == (side, side)


def test_embedding_plot_data_covers_the_same_sample(trained):
    rows = read_csv(trained.reports / "embeddings.csv")
    meta = (trained.reports / "projector" / "metadata.tsv").read_text().splitlines()[1:]
    assert [r["test_index"] for r in rows] == [line.split("\t")[0] for line in meta]
    assert sum(r["tsne_x"] != "" for r in rows) == TSNE


def test_curves_data_is_the_logged_history(trained):
    rows = read_csv(trained.reports / "curves.csv")
    history = MlflowClient().get_metric_history(trained.run_id, "loss")
    assert [float(r["loss"]) for r in rows] == pytest.approx([m.value for m in history], rel=1e-5)
    assert float(rows[-1]["gap"]) == pytest.approx(float(rows[-1]["accuracy"]) - float(rows[-1]["val_accuracy"]),
                                                   abs=1e-5)


def test_reports_off_logs_nothing(trained):
    model = mlflow.keras.load_model(f"runs:/{trained.run_id}/model")
    with mlflow.start_run() as run:
        off = from_yaml(ReportConfig, "report/default.yaml", enabled=False)
        log_run_reports(model, load_splits(subset=SUBSET, seed=SEED), {}, off)
    assert MlflowClient().list_artifacts(run.info.run_id) == []


def test_a_failing_report_warns_and_tags_but_does_not_fail_the_run(trained, capsys):
    model = mlflow.keras.load_model(f"runs:/{trained.run_id}/model")
    splits = load_splits(subset=SUBSET, seed=SEED)
    broken = dataclasses.replace(splits, x_test=splits.x_test[:, :20])  # 20x28 images: the model refuses them
    with mlflow.start_run() as run:
        log_run_reports(model, broken, {}, from_yaml(ReportConfig, "report/default.yaml"))
    assert "report_error" in mlflow.get_run(run.info.run_id).data.tags
    assert "warning: reports not logged:" in capsys.readouterr().err


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_report_command_regenerates_a_runs_reports(trained):
    """`python -m fmnist.report run=ID` redraws deleted reports, the same as before."""
    before = (trained.reports / "confusion.json").read_text()
    shutil.rmtree(trained.reports)
    out = subprocess.run([sys.executable, "-m", "fmnist.report", f"run={trained.run_id}", *OVERRIDES[-3:]],
                         capture_output=True, text=True, cwd=trained.tmp)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"run {trained.run_id}: 13 report files logged" in out.stdout
    for name in PNGS:
        assert_png(trained.reports / name)
    assert (trained.reports / "confusion.json").read_text() == before
    assert len((trained.reports / "projector" / "metadata.tsv").read_text().splitlines()) - 1 == EMBED


def test_report_model_best_resolves_to_the_source_run(trained, tmp_path):
    version = mlflow.register_model(f"runs:/{trained.run_id}/model", "fmnist-cnn").version
    MlflowClient().set_registered_model_alias("fmnist-cnn", "best", version)
    cfg = checked("report", ["model=best", f"out={tmp_path}", "report.embeddings=false", "report.mistakes=3"])
    assert redraw(cfg) == trained.run_id
    assert len(read_csv(tmp_path / "mistakes.csv")) == 3 and not (tmp_path / "projector").exists()


def test_report_command_arguments():
    argv = renamed(["model=best", "run=x", "report.model=y"], "model_ref")
    assert argv == ["model_ref=best", "run=x", "report.model=y"]
    with pytest.raises(ConfigError, match="exactly one of run=RUN_ID or model=ALIAS"):
        checked("report", [])


def synthetic_trials() -> list[dict]:
    """Eight trials as the sweep passes them: MLflow params come back as strings; one failed."""
    rng = np.random.default_rng(0)
    trials = []
    for i in range(8):
        val = float(rng.uniform(0.7, 0.9))
        trials.append({
            "trial_id": f"{i:02d}", "status": "FAILED" if i == 3 else "COMPLETED",
            "val_accuracy": math.nan if i == 3 else val, "train_accuracy": math.nan if i == 3 else val + 0.01 * i,
            "test_accuracy": math.nan if i == 3 else val - 0.01, "overfit_gap": math.nan if i == 3 else 0.01 * i,
            "seconds": 10.0 + i, "hp.learning_rate": str(10 ** rng.uniform(-4, -2)),
            "hp.batch_size": str(rng.choice([64, 128])), "hp.optimizer": ["adam", "sgd"][i % 2],
            "hp.batch_norm": str(bool(i % 3)), "hp.epochs": "1",
            **({"hp.filters_1": "32"} if i % 2 else {}),  # conditional: only some trials have it
        })
    return trials


def test_sweep_reports_from_synthetic_trials(trained):
    trials = synthetic_trials()
    with mlflow.start_run() as run:
        log_sweep_reports(trials)
    folder = Path(urlparse(mlflow.get_run(run.info.run_id).info.artifact_uri).path) / "sweep_reports"
    for name in ("sweep_progress.png", "sweep_hyperparameters.png", "sweep_gap.png"):
        assert_png(folder / name)
    rows = read_csv(folder / "trials.csv")
    assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in trials]
    val = [t["val_accuracy"] for t in trials]
    expected = [max(v for v in val[: i + 1] if not math.isnan(v)) for i in range(len(val))]
    assert [float(r["best_so_far"]) for r in rows] == pytest.approx(expected, rel=1e-5)
