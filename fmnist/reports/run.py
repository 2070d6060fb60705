"""All of one run's reports, drawn into a folder and logged as MLflow artifacts."""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import keras
import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from fmnist.config import ReportConfig
from fmnist.reports.confusion import write_confusion
from fmnist.reports.curves import write_curves
from fmnist.reports.embeddings import project, sample, write_embeddings
from fmnist.reports.mistakes import write_mistakes
from fmnist.reports.predict import Outputs, predict
from fmnist.reports.projector import write_projector
from fmnist.training.data import CLASS_NAMES, Splits

ARTIFACT_PATH = "reports"


@contextmanager
def collector_paused() -> Iterator[None]:
    """With TensorFlow loaded a process tracks ~600k objects, and the many short-lived ones
    plotting allocates set off a full garbage collection that alone took 0.3-0.8 s, more than
    any plot. Paused while drawing; the figures' garbage is young and goes in the next,
    cheap, collection."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_embedding_reports(outputs: Outputs, splits: Splits, picked: np.ndarray,
                            projections: tuple[np.ndarray, np.ndarray], out: Path) -> list[Path]:
    """Projector files for the sampled test images, and their PCA / t-SNE plots."""
    labels, pred = splits.y_test[picked], outputs.probabilities[picked].argmax(1)
    meta = [(int(i), CLASS_NAMES[t], CLASS_NAMES[p], t == p) for i, t, p in zip(picked, labels, pred, strict=False)]
    return [*write_projector(outputs.features[picked], splits.x_test[picked], meta, out / "projector"),
            *write_embeddings(*projections, labels, picked, CLASS_NAMES, out)]


def write_run_reports(model: keras.Model, splits: Splits, history: dict[str, list[float]], cfg: ReportConfig,
                      out: Path, outputs: Outputs | None = None) -> list[Path]:
    """Every report of one trained model into `out`; returns the files written. The test
    set is the evaluated set: its accuracy here is the run's logged test_accuracy.
    `outputs`: the model's test-set pass, when the caller has made it already."""
    outputs = outputs or predict(model, splits.x_test)
    picked = sample(len(splits.y_test), cfg.embed_sample, cfg.seed)
    with ThreadPoolExecutor(1) as pool:
        # t-SNE's gradient loop releases the GIL: on a second core it runs while the other plots draw.
        projections = (pool.submit(project, outputs.features[picked], cfg.tsne_sample, cfg.seed)
                       if cfg.embeddings else None)
        files = [*write_curves(history, out),
                 *write_confusion(splits.y_test, outputs.probabilities.argmax(1), CLASS_NAMES, out),
                 *write_mistakes(splits.x_test, splits.y_test, outputs.probabilities, CLASS_NAMES, cfg.mistakes, out)]
        if projections:
            files += write_embedding_reports(outputs, splits, picked, projections.result(), out)
    return files


def log_run_reports(model: keras.Model, splits: Splits, history: dict[str, list[float]], cfg: ReportConfig,
                    outputs: Outputs | None = None, run_id: str | None = None) -> None:
    """Draw the reports and log them under `reports/` of the active MLflow run (or of
    `run_id`, left closed), with the seconds it took as the metric report_seconds (the
    overhead a user pays). A failure here is a warning and a `report_error` tag: a
    picture must not fail the run it describes."""
    if not cfg.enabled:
        return
    client, run_id = MlflowClient(), run_id or mlflow.active_run().info.run_id
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="fmnist-reports-") as tmp, collector_paused():
            write_run_reports(model, splits, history, cfg, Path(tmp), outputs)
            client.log_artifacts(run_id, tmp, ARTIFACT_PATH)
    except Exception as e:  # noqa: BLE001 - any failure, see above
        message = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        print(f"warning: reports not logged: {message}", file=sys.stderr)
        client.set_tag(run_id, "report_error", message)
        return
    client.log_metric(run_id, "report_seconds", time.perf_counter() - start)
