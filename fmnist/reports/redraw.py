"""`python -m fmnist.report run=RUN_ID | model=best [report.key=value ...]`: redraw a run's reports.

Loads the run's keras model, rebuilds its data split from the run's logged config.yaml and
logs fresh reports under the run's `reports/` (the run itself is not reopened: its status
and times stay as they were). `model=` names a registered model version instead; the
reports go to the run that trained it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from fmnist.config import ReportCommand
from fmnist.reports.run import ARTIFACT_PATH, write_run_reports
from fmnist.reports.source import load_history, load_model, load_settings, source_run
from fmnist.training.data import load_splits


def redraw(cfg: ReportCommand) -> str:
    """Write and log the reports; returns the run they were logged to."""
    if cfg.mlflow.tracking_uri:
        mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    client = MlflowClient()
    run_id = cfg.run or source_run(client, cfg.model_ref, cfg.mlflow.registered_model)
    model = load_model(run_id)
    settings = load_settings(client, run_id)
    splits = load_splits(cfg.data_dir or settings.data.dir, settings.data.val_fraction, settings.data.subset,
                         settings.seed)
    with tempfile.TemporaryDirectory(prefix="fmnist-report-") as tmp:
        out = Path(cfg.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        files = write_run_reports(model, splits, load_history(client, run_id), cfg.report, out)
        client.log_artifacts(run_id, str(out), ARTIFACT_PATH)
    where = f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}"
    print(f"run {run_id}: {len(files)} report files logged to {where}" + (f"; copy in {cfg.out}" if cfg.out else ""))
    return run_id
