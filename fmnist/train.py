"""`python -m fmnist.train [experiment=NAME] [key=value ...]`: one model, one MLflow run.

The run holds every resolved config value as a param, per-epoch curves, the summary
metrics (train / val / test accuracy and the overfitting gap), the resolved config and
the model. The functions here are also the sweep's building blocks.
"""

from __future__ import annotations

import math
import time

import keras
import mlflow
import numpy as np

from fmnist import cli
from fmnist.augment import AugmentedBatches
from fmnist.config import Augment, Config, ReportConfig, TrainConfig, TrainerConfig
from fmnist.data import Splits, load_splits
from fmnist.model import build_model, mirror_averaged
from fmnist.reports import log_run_reports
from fmnist.reports.predict import Outputs, predict
from fmnist.tracking import EpochLogger, flatten, run_tags, use_store
from fmnist.modelio import log_keras_model


def seed_everything(seed: int) -> None:
    """Python, NumPy and backend RNGs, plus deterministic TF ops: same seed, same metrics on CPU."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def fit(model: keras.Model, splits: Splits, trainer: TrainerConfig, callbacks: list, epochs: int | None = None,
        batch_size: int | None = None, initial_epoch: int = 0, aug: Augment = Augment()) -> keras.callbacks.History:
    """Plain `model.fit` on the arrays (augmented batches when `aug` asks for them), plus
    optional early stopping, LR decay on val_loss and a cosine LR schedule. `epochs` /
    `batch_size` override the trainer's (a sweep trial tunes them)."""
    epochs, batch_size = epochs or trainer.epochs, batch_size or trainer.batch_size
    if trainer.lr_schedule == "cosine":
        callbacks = [*callbacks, cosine_schedule(float(model.optimizer.learning_rate), epochs)]
    if trainer.early_stopping:
        callbacks = [*callbacks, keras.callbacks.EarlyStopping(
            "val_loss", patience=trainer.early_stopping, restore_best_weights=True)]
    if trainer.reduce_lr:
        callbacks = [*callbacks, keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=trainer.reduce_lr)]
    if aug.changes_images:  # seeded from the global seed, so a run repeats
        train = {"x": AugmentedBatches(splits.x_train, splits.y_train, batch_size, aug, int(np.random.randint(2**31)))}
    else:
        train = {"x": splits.x_train, "y": splits.y_train, "batch_size": batch_size}
    return model.fit(
        **train, validation_data=(splits.x_val, splits.y_val), epochs=epochs,
        initial_epoch=initial_epoch, callbacks=callbacks, verbose=trainer.verbose,
    )


def cosine_schedule(start: float, epochs: int) -> keras.callbacks.Callback:
    """Half a cosine from `start` towards 0 over `epochs`, one step per epoch: a short run
    ends at a low rate, so it gets most of what a long constant-rate run reaches, and a
    sweep's short trials rank settings by what they are worth when trained to the end."""
    return keras.callbacks.LearningRateScheduler(lambda e: start * 0.5 * (1 + math.cos(math.pi * e / epochs)))


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy in inference mode (dropout off), unlike Keras' running training average;
    by `predict`, so an uncompiled (mirror-averaged) model is measured the same way."""
    return float(np.mean(model.predict(x, batch_size=1024, verbose=0).argmax(1) == y))


def summarize(model: keras.Model, splits: Splits, test: Outputs) -> dict[str, float]:
    """The four summary metrics every run and trial carries; the test accuracy comes from
    the test-set pass the reports use too, so the test set is predicted once per run."""
    train, val = accuracy(model, splits.x_train, splits.y_train), accuracy(model, splits.x_val, splits.y_val)
    return {
        "train_accuracy": train,
        "val_accuracy": val,
        "test_accuracy": test.accuracy(splits.y_test),
        "overfit_gap": train - val,
    }


def log_results(model: keras.Model, splits: Splits, history: keras.callbacks.History, report: ReportConfig,
                aug: Augment, log_model: bool = True, **extra: float) -> dict[str, float]:
    """What every trained model leaves in the active run, a train run or a sweep trial alike:
    the summary metrics, the reports and the model (mirror-averaged if `aug` says so: the
    metrics are those of the model logged). Returns the summary."""
    if aug.averages_mirror:
        model = mirror_averaged(model)
    test = predict(model, splits.x_test)
    summary = summarize(model, splits, test)
    log_run_reports(model, splits, history.history, report, test)
    # The summary shares keys with the curves (val_accuracy): log it at the last epoch's step.
    mlflow.log_metrics({**summary, "epochs_run": len(history.epoch), **extra}, step=len(history.epoch))
    if log_model:
        log_keras_model(model, splits.x_val[:2])
    return summary


def train(cfg: TrainConfig) -> str:
    """Train and log one model; returns the MLflow run id."""
    seed_everything(cfg.seed)
    splits = load_splits(cfg.data.dir, cfg.data.val_fraction, cfg.data.subset, cfg.seed)
    use_store(cfg.mlflow)
    with mlflow.start_run(run_name=cfg.mlflow.run_name or cfg.name, tags=run_tags(experiment=cfg.name)) as run:
        own = cfg.model_dump(include=set(TrainConfig.model_fields))  # not the sweep's sections
        mlflow.log_params(flatten(own))
        mlflow.log_dict(own, "config.yaml")
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


main = cli.entry("config", Config, lambda cfg: train(cfg) and 0)

if __name__ == "__main__":
    main()
