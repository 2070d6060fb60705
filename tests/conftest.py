"""Shared fixtures: Hydra composition as the CLI does it, and throwaway MLflow stores."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir

from fmnist.cli import CONF_DIR

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO.parent / "shared" / "real-photos" / "validation"


def compose_cfg(config_name: str, overrides: list[str]):
    """The config the CLI would see for `python -m fmnist.<x> overrides...`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides)


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A fresh sqlite MLflow store with artifacts under tmp_path; the process is pointed at it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # MLflow puts the default artifact root at ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
