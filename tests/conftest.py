"""Shared fixtures: Hydra composition as the CLI does it, and throwaway MLflow stores."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import mlflow
import pytest

REPO = Path(__file__).resolve().parent.parent
# Twenty CC0 photos shipped with the tests (two per class folder), so no photo test skips on a
# fresh clone; FMNIST_PHOTOS=DIR runs them on another folder of class subfolders.
PHOTOS = Path(os.environ.get("FMNIST_PHOTOS", REPO / "tests" / "data" / "photos"))


@contextmanager
def mlflow_store(root: Path) -> Iterator[str]:
    """A fresh sqlite MLflow store with artifacts under `root`; this process and the
    commands it starts use it (cwd and MLFLOW_TRACKING_URI) until the block ends."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # MLflow puts the default artifact root at ./mlruns
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        # An experiment an earlier test made active (in its own store) would be this store's too:
        # `start_run` would then ask for an id this store lacks. Two test processes (pytest-xdist)
        # run tests in other orders, so the order cannot be what resets it.
        mp.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
        try:
            yield uri
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture
def store(tmp_path) -> Iterator[str]:
    with mlflow_store(tmp_path) as uri:
        yield uri
