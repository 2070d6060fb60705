"""Shared fixtures: Hydra composition as the CLI does it, and throwaway MLflow stores."""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
from typing import Iterator

import mlflow
import pytest
from hydra import compose, initialize_config_dir

from fmnist.cli import CONF_DIR

REPO = Path(__file__).resolve().parent.parent
# Twenty CC0 photos shipped with the tests (two per class folder), so no photo test skips on a
# fresh clone; FMNIST_PHOTOS=DIR runs them on another folder of class subfolders.
PHOTOS = Path(os.environ.get("FMNIST_PHOTOS", REPO / "tests" / "photos"))


def compose_cfg(config_name: str, overrides: list[str]):
    """The config the CLI would see for `python -m fmnist.<x> overrides...`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides)


@contextmanager
def mlflow_store(root: Path) -> Iterator[str]:
    """A fresh sqlite MLflow store with artifacts under `root`; this process and the
    commands it starts use it (cwd and MLFLOW_TRACKING_URI) until the block ends."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # MLflow puts the default artifact root at ./mlruns
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        try:
            yield uri
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture
def store(tmp_path) -> Iterator[str]:
    with mlflow_store(tmp_path) as uri:
        yield uri
