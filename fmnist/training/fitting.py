"""Fit a model and log what every trained model leaves in its run: the building blocks
of a train run, a sweep trial and a retrain alike."""

from __future__ import annotations

import math

import keras
import mlflow
import numpy as np

from fmnist.batches import fit_inputs, outputs, validation_data
from fmnist.config import Augment, ReportConfig, TrainerConfig
from fmnist.reports import log_run_reports
from fmnist.reports.predict import Outputs, predict
from fmnist.training.augment import WarpedBatches, trained_model
from fmnist.training.data import Splits
from fmnist.training.model import mirror_averaged
from fmnist.training.modelio import log_keras_model


def seed_everything(seed: int) -> None:
    """Python, NumPy and backend RNGs, plus deterministic TF ops: same seed, same metrics on CPU."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def fit(model: keras.Model, splits: Splits, trainer: TrainerConfig, callbacks: list, epochs: int | float | None = None,
        initial_epoch: int = 0, aug: Augment | None = None, parts: int = 1) -> keras.callbacks.History:
    """`model.fit` on the arrays, with `aug`'s flips and shifts inside the training step (and
    its warps, if any, made on the host), plus optional early stopping, LR decay on val_loss
    and a cosine LR schedule. `epochs` overrides the trainer's (Hyperband sets a trial's).
    `parts` > 1: Keras epochs of 1/parts of the images (a pruned trial's rungs fall between
    passes), `epochs * parts` of them, validated once a pass; `per_epoch` condenses the history."""
    epochs, batch_size = epochs or trainer.epochs, trainer.batch_size
    steps = round(epochs * parts)
    if trainer.lr_schedule == "cosine":
        callbacks = [*callbacks, cosine_schedule(float(model.optimizer.learning_rate), steps)]
    if trainer.early_stopping:
        callbacks = [*callbacks, keras.callbacks.EarlyStopping(
            "val_loss", patience=trainer.early_stopping, restore_best_weights=True)]
    if trainer.reduce_lr:
        callbacks = [*callbacks, keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=trainer.reduce_lr)]
    seed = int(np.random.randint(2**31))  # from the global seed, so a run repeats
    trained = trained_model(model, aug, trainer.steps_per_execution, seed)
    if aug and aug.warps:
        train = {"x": WarpedBatches(splits.x_train, splits.y_train, batch_size, aug, seed)}
    else:
        train = fit_inputs(splits.x_train, splits.y_train, batch_size, seed, parts)
    return trained.fit(
        **train, validation_data=validation_data(splits.x_val, splits.y_val), epochs=steps,
        initial_epoch=initial_epoch, callbacks=callbacks, verbose=trainer.verbose, validation_freq=parts,
    )


def per_epoch(history: keras.callbacks.History, parts: int) -> keras.callbacks.History:
    """A history of Keras epochs of 1/`parts` of the images, as one of whole passes: training
    metrics averaged over each pass's parts, validation ones (measured once a pass) as they
    are; a last, unfinished pass is dropped. With parts 1, `history` itself."""
    if parts == 1:
        return history
    passes = len(history.epoch) // parts
    out = keras.callbacks.History()
    out.epoch = list(range(passes))
    out.history = {k: ([float(np.mean(v[i * parts:(i + 1) * parts])) for i in range(passes)]
                       if not k.startswith("val_") else list(v[:passes]))
                   for k, v in history.history.items()}
    return out


def cosine_schedule(start: float, epochs: int) -> keras.callbacks.Callback:
    """Half a cosine from `start` towards 0 over `epochs`, one step per epoch: a short run
    ends at a low rate, so it gets most of what a long constant-rate run reaches, and a
    sweep's short trials rank settings by what they are worth when trained to the end."""
    return keras.callbacks.LearningRateScheduler(lambda e: start * 0.5 * (1 + math.cos(math.pi * e / epochs)))


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy in inference mode (dropout off), unlike Keras' running training average;
    by direct calls (`batches.outputs`), so an uncompiled (mirror-averaged) model is measured the same way."""
    return float(np.mean(outputs(model, x).argmax(1) == y))


def margin(p: float, n: int) -> float:
    """Half-width of the 95% interval of an accuracy `p` measured on `n` images (normal
    approximation): what separates a real difference from the luck of the test set."""
    return 1.96 * math.sqrt(p * (1 - p) / n)


def summarize(model: keras.Model, splits: Splits, test: Outputs, train_every: int = 1) -> dict[str, float]:
    """The four summary metrics every run and trial carries; the test accuracy comes from
    the test-set pass the reports use too, so the test set is predicted once per run.
    `train_every` > 1: the training accuracy on every n-th training image (a sweep's trials:
    the whole split is most of a short trial's closing; a fifth of it measures a gap to about
    0.2 points)."""
    x, y = splits.x_train[::train_every], splits.y_train[::train_every]
    train, val = accuracy(model, x, y), accuracy(model, splits.x_val, splits.y_val)
    return {
        "train_accuracy": train,
        "val_accuracy": val,
        "test_accuracy": test.accuracy(splits.y_test),
        "overfit_gap": train - val,
    }


def log_results(model: keras.Model, splits: Splits, history: keras.callbacks.History, report: ReportConfig,
                aug: Augment, log_model: bool = True, train_every: int = 1, **extra: float) -> dict[str, float]:
    """What every trained model leaves in the active run, a train run or a sweep trial alike:
    the summary metrics, the reports and the model (mirror-averaged if `aug` says so: the
    metrics are those of the model logged). Returns the summary."""
    if aug.averages_mirror:
        model = mirror_averaged(model)
    test = predict(model, splits.x_test)
    summary = summarize(model, splits, test, train_every)
    log_run_reports(model, splits, history.history, report, test)
    # The summary shares keys with the curves (val_accuracy): log it at the last epoch's step.
    mlflow.log_metrics({**summary, "epochs_run": len(history.epoch), **extra}, step=len(history.epoch))
    if log_model:
        log_keras_model(model, splits.x_val[:2])
    return summary
