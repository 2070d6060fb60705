"""`python -m fmnist.report run=RUN_ID | model=best [report.key=value ...]`: redraw a run's reports.

Loads the run's keras model, rebuilds its data split from the run's logged config.yaml and
logs fresh reports under the run's `reports/` (the run itself is not reopened: its status
and times stay as they were). `model=` names a registered model version instead; the
reports go to the run that trained it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

import mlflow
from mlflow.tracking import MlflowClient
from pydantic import model_validator

from fmnist import cli
from fmnist.config import MlflowConfig, ReportConfig, Strict
from fmnist.data import load_splits
from fmnist.reports.run import ARTIFACT_PATH, write_run_reports
from fmnist.reports.source import ReportError, load_history, load_model, load_settings, source_run


class ReportCommand(Strict):
    run: Optional[str] = None
    model_ref: Optional[str] = None
    data_dir: Optional[str] = None
    out: Optional[str] = None
    mlflow: MlflowConfig = MlflowConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _one_source(self) -> "ReportCommand":
        if (self.run is None) == (self.model_ref is None):
            raise ValueError("give exactly one of run=RUN_ID or model=ALIAS (e.g. model=best)")
        return self


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


def job(cfg: ReportCommand) -> int:
    try:
        redraw(cfg)
    except ReportError as e:
        print(f"error: report: {e}", file=sys.stderr)
        return cli.EXIT_FAILED
    return 0


def hydra_args(argv: list[str]) -> list[str]:
    """`model=` here names a registered model, but Hydra would read it as a choice in the
    conf/model/ group that train and sweep use; it reaches the config as `model_ref=`."""
    return [f"model_ref={a.removeprefix('model=')}" if a.startswith("model=") else a for a in argv]


main = cli.entry("report", ReportCommand, job)

if __name__ == "__main__":
    sys.argv[1:] = hydra_args(sys.argv[1:])
    main()
