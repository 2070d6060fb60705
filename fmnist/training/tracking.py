"""MLflow plumbing shared by train and sweep: store, params, per-epoch curves, tags."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse
from urllib.request import url2pathname

import keras
import mlflow
from mlflow.entities import Experiment
from mlflow.exceptions import MlflowException

from fmnist.config import MlflowConfig
from fmnist.errors import ConfigError, StoreError


def use_store(cfg: MlflowConfig) -> None:
    """Point MLflow at the configured store; with none configured MLflow's own rules apply
    ($MLFLOW_TRACKING_URI, else sqlite:///mlflow.db with artifacts in ./mlruns). A store the
    runs could not log to fails here, in one line, before any run has started."""
    if cfg.tracking_uri:
        mlflow.set_tracking_uri(cfg.tracking_uri)
    with one_at_a_time():
        experiment = active_experiment(cfg.experiment)
    # Where two processes create the experiment at once, MLflow returns it to the one that lost
    # the race without making it active: its runs would go to the Default experiment.
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    check_writable(experiment.artifact_location)


@contextmanager
def one_at_a_time() -> Iterator[None]:
    """Two processes opening a new sqlite store at once both create its tables, and one crashes
    ("table experiments already exists"): they take turns, under a lock on the folder that holds
    the file. Not on the file itself: closing a second handle on it would drop the locks sqlite
    holds in this process; and not on a file beside it, which would be left in the user's folder."""
    uri = mlflow.get_tracking_uri()
    path = uri.removeprefix("sqlite:///").split("?")[0] if uri.startswith("sqlite:///") else ""
    try:
        folder = os.open(Path(path).parent, os.O_RDONLY) if path and path != ":memory:" else None
    except OSError:  # no such folder: sqlite says so itself
        folder = None
    try:
        if folder is not None:
            fcntl.flock(folder, fcntl.LOCK_EX)  # the kernel drops it when the process ends, however it ends
        yield
    finally:
        if folder is not None:
            os.close(folder)


def active_experiment(name: str) -> Experiment:
    """`name`, made the active experiment (created if new); a deleted one is a line saying how to restore it."""
    try:
        return mlflow.set_experiment(name)
    except MlflowException:
        found = mlflow.MlflowClient().get_experiment_by_name(name)
        if not found or found.lifecycle_stage != "deleted":
            raise
        raise ConfigError(f"mlflow.experiment={name!r}: this experiment is deleted in the tracking store "
                          f"{mlflow.get_tracking_uri()}; restore it (mlflow experiments restore --experiment-id "
                          f"{found.experiment_id}) or choose another mlflow.experiment") from None


def check_writable(location: str) -> None:
    """A local artifact folder the runs cannot write to would fail the first artifact a run logs,
    with the run started (a sweep's parent run left behind): one line here, naming the folder."""
    url = urlparse(location)
    if url.scheme not in ("", "file"):  # a server or a bucket answers for itself
        return
    folder = Path(url2pathname(url.path) if url.scheme else location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".fmnist-write-check-").close()
    except OSError as e:
        raise StoreError(f"the artifact folder {folder} is not writable ({e.strerror}): make it writable, "
                         "or log to another store (MLFLOW_TRACKING_URI or mlflow.tracking_uri)") from None


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
