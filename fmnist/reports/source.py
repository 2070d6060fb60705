"""What `fmnist.report` redraws from: a run's keras model, its curves and its data settings.

A registered model version points at the run that trained it (the sweep tags it
`source_run`; otherwise the version's own run). Sweep trial runs log no config.yaml of
their own, so the data settings come from the nearest ancestor run that has one.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.config import DataConfig, validate
from fmnist.errors import ReportError
from fmnist.reports.curves import COLUMNS
from fmnist.training.model import CUSTOM_OBJECTS

MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class Settings:
    """What rebuilds the run's splits."""

    data: DataConfig
    seed: int


def registered_version(client: MlflowClient, ref: str, default_name: str):
    """`ALIAS`, `NAME@ALIAS`, `NAME/VERSION`, with or without a `models:/` prefix."""
    ref = ref.removeprefix("models:/")
    try:
        if "@" in ref or "/" not in ref:
            name, alias = ref.split("@", 1) if "@" in ref else (default_name, ref)
            return client.get_model_version_by_alias(name, alias)
        name, version = ref.rsplit("/", 1)
        return client.get_model_version(name, version)
    except MlflowException as e:
        raise ReportError(f"model={ref!r}: no such registered model version ({e.message.splitlines()[0]})") from None


def source_run(client: MlflowClient, ref: str, default_name: str) -> str:
    """The run that trained the registered model `ref`."""
    version = registered_version(client, ref, default_name)
    return version.tags.get("source_run") or version.run_id


def load_model(run_id: str) -> keras.Model:
    try:
        return mlflow.keras.load_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", custom_objects=CUSTOM_OBJECTS)
    except (MlflowException, OSError, ValueError) as e:
        raise ReportError(f"run {run_id}: no keras-flavour model at '{MODEL_ARTIFACT}' "
                          f"({str(e).splitlines()[0][:200]})") from None


def load_history(client: MlflowClient, run_id: str) -> dict[str, list[float]]:
    """The per-epoch curves, one value per step. Where a summary metric shares a key and a
    step with the curve (val_accuracy at the last epoch), the epoch's own, earlier, value wins."""
    history = {}
    for key in COLUMNS:
        first: dict[int, float] = {}
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp)):
            first.setdefault(m.step, m.value)
        history[key] = [first[step] for step in sorted(first)]
    return history


def load_settings(client: MlflowClient, run_id: str) -> Settings:
    """data.* and seed from config.yaml of `run_id` or, failing that, of its nearest ancestor."""
    run: str | None = run_id
    while run:
        if "config.yaml" in {a.path for a in client.list_artifacts(run)}:
            logged = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run}/config.yaml"))
            return Settings(validate(DataConfig, logged.get("data", {}), prefix="data."), int(logged["seed"]))
        run = client.get_run(run).data.tags.get("mlflow.parentRunId")
    raise ReportError(f"run {run_id}: neither it nor a parent run logged config.yaml; cannot rebuild its data split")
