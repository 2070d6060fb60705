"""One model, one MLflow run: every resolved config value as a param, per-epoch curves, the
summary metrics (train / val / test accuracy and the overfitting gap), the resolved config,
the reports and the model."""

from __future__ import annotations

import time

import mlflow

from fmnist.config import TrainConfig
from fmnist.training.data import load_splits
from fmnist.training.fitting import fit, log_results, seed_everything
from fmnist.training.model import build_model
from fmnist.training.tracking import EpochLogger, flatten, run_tags, use_store


def train(cfg: TrainConfig) -> str:
    """Train and log one model; returns the MLflow run id."""
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data.dir, cfg.data.val_fraction, cfg.data.subset, cfg.seed)
    use_store(cfg.mlflow)
    with mlflow.start_run(run_name=cfg.mlflow.run_name or cfg.name, tags=run_tags(experiment=cfg.name)) as run:
        own = cfg.model_dump(include=set(TrainConfig.model_fields))  # not the sweep's sections
        mlflow.log_params(flatten(own))
        mlflow.log_dict(own, "config.yaml")
        mlflow.log_dict(cfg.model.model_dump(), "model.yaml")  # as a sweep trial logs it, to compare
        model = build_model(cfg.model)
        start = time.perf_counter()
        history = fit(model, splits, cfg.trainer, [EpochLogger(run.info.run_id)], aug=cfg.model.augment)
        seconds = time.perf_counter() - start
        summary = log_results(model, splits, history, cfg.report, cfg.model.augment, cfg.mlflow.log_model,
                              train_seconds=seconds)
    print(
        f"run {run.info.run_id}: train {summary['train_accuracy']:.4f}  val {summary['val_accuracy']:.4f}  "
        f"test {summary['test_accuracy']:.4f}  gap {summary['overfit_gap']:+.4f}  "
        f"({len(history.epoch)} epochs, {seconds:.0f} s)  tracking: {mlflow.get_tracking_uri()}"
    )
    return run.info.run_id
