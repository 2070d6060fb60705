"""MLflow plumbing shared by train and sweep: store, params, per-epoch curves, tags."""

from __future__ import annotations

import subprocess
from typing import Any

import keras
import mlflow

from fmnist.config import MlflowConfig


def use_store(cfg: MlflowConfig) -> None:
    """Point MLflow at the configured store; with none configured MLflow's own rules apply
    ($MLFLOW_TRACKING_URI, else sqlite:///mlflow.db with artifacts in ./mlruns)."""
    if cfg.tracking_uri:
        mlflow.set_tracking_uri(cfg.tracking_uri)
    experiment = mlflow.set_experiment(cfg.experiment)
    # Where two processes create the experiment at once, MLflow returns it to the one that lost
    # the race without making it active: its runs would go to the Default experiment.
    mlflow.set_experiment(experiment_id=experiment.experiment_id)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists -> {'model.conv_blocks.0.filters': 32, ...} for log_params."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list) and tree:
        items = enumerate(tree)
    else:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def git_commit() -> str | None:
    """The checkout's commit, when there is one; runs stay traceable to code."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except OSError:
        return None
    return out.stdout.strip() or None


def run_tags(**tags: Any) -> dict[str, str]:
    commit = git_commit()
    extra = {"mlflow.source.git.commit": commit} if commit else {}
    return {**{k: str(v) for k, v in tags.items()}, **extra}


class EpochLogger(keras.callbacks.Callback):
    """Logs Keras' epoch metrics (loss, accuracy, val_loss, val_accuracy) with the epoch as step."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        mlflow.log_metrics(metrics, step=epoch + 1, run_id=self.run_id)
