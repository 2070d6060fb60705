"""Keras callbacks the sweep adds to `fit`: a pace probe for trials, and the retrain's
choice of epoch under the project's overfitting limit."""

from __future__ import annotations

import time

import keras
import numpy as np

from fmnist.training.fitting import accuracy


class Pace(keras.callbacks.Callback):
    """Stops a run a few batches in when its measured pace says it would take longer than
    `minutes`: on a small machine one oversized model must not eat the sweep's hour. Keras
    reports every `steps_per_execution` batches, so the probe spans at least `probe` batches
    from the first report after `warmup` (the first batches include graph tracing)."""

    def __init__(self, minutes: float, epochs: int, warmup: int = 5, probe: int = 20) -> None:
        super().__init__()
        self.limit, self.epochs, self.warmup, self.probe = minutes * 60, epochs, warmup, probe
        self.projected = 0.0
        self._mark: tuple[int, float] | None = None
        self._measured = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self._measured or batch < self.warmup:
            return
        if self._mark is None:
            self._mark = (batch, time.perf_counter())
            return
        first, start = self._mark
        if batch - first < self.probe:
            return
        self._measured = True
        projected = (time.perf_counter() - start) / (batch - first) * self.params["steps"] * self.epochs
        if projected > self.limit:
            self.projected, self.model.stop_training = projected, True


class BestWithinGap(keras.callbacks.Callback):
    """Puts back, at the end, the weights of the epoch with the best validation accuracy
    among those whose overfitting gap is at most `max_gap`. A long run's last epochs buy
    training accuracy more than validation accuracy, and the project registers no model
    that overfits. The gap's training side is a fixed sample in inference mode: about a
    second an epoch, where the whole training split would cost a fifth of one."""

    def __init__(self, x_sample: np.ndarray, y_sample: np.ndarray, max_gap: float) -> None:
        super().__init__()
        self.x, self.y, self.max_gap = x_sample, y_sample, max_gap
        self.best, self.kept_epoch, self._weights = -1.0, -1, None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        val = logs["val_accuracy"]
        train = accuracy(self.model, self.x, self.y)
        if train - val <= self.max_gap and val > self.best:
            self.best, self.kept_epoch, self._weights = val, epoch, self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._weights is not None:
            self.model.set_weights(self._weights)
