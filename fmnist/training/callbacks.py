"""Keras callbacks the sweep adds to `fit`: a pace probe for trials, and the retrain's
choice of epoch under the project's overfitting limit."""

from __future__ import annotations

import time
from typing import Callable

import keras
import numpy as np

from fmnist.training.fitting import accuracy


class Pace(keras.callbacks.Callback):
    """Stops a run a few batches in when its measured pace says it would take longer than
    `minutes`: on a small machine one oversized model must not eat the sweep's hour. Keras
    reports every `steps_per_execution` batches, so the probe spans at least `probe` batches
    from the first report after `warmup` (the first batches include graph tracing); batches
    are counted across Keras epochs, which a pruned trial makes short.

    `rungs` (a pruned trial's, in Keras epochs): a run too slow to reach the last rung in time
    goes as far as the last rung it can reach (`cap`) instead of stopping; only a run too slow
    for the first rung stops (`projected` is set)."""

    def __init__(self, minutes: float, epochs: int, warmup: int = 5, probe: int = 20,
                 rungs: list[int] | None = None) -> None:
        super().__init__()
        self.limit, self.epochs, self.warmup, self.probe = minutes * 60, epochs, warmup, probe
        self.rungs = list(rungs or [])
        self.projected = 0.0
        self.cap: int | None = None  # the last Keras epoch this run can afford (a rung's); None: all
        self._before = 0  # batches in the Keras epochs already ended
        self._mark: tuple[int, float] | None = None
        self._measured = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._before += self.params["steps"]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        seen = self._before + batch + 1  # `batch`, not a count of calls: one call spans steps_per_execution batches
        if self._measured or seen <= self.warmup:
            return
        if self._mark is None:
            self._mark = (seen, time.perf_counter())
            return
        first, start = self._mark
        if seen - first < self.probe:
            return
        self._measured = True
        per_epoch = (time.perf_counter() - start) / (seen - first) * self.params["steps"]
        affordable = [r for r in self.rungs if per_epoch * r <= self.limit]
        if per_epoch * self.epochs <= self.limit:
            return
        if affordable:
            self.cap = affordable[-1]
        else:
            self.projected, self.model.stop_training = per_epoch * self.epochs, True


class Rungs(keras.callbacks.Callback):
    """A pruned trial's rungs: at the end of each rung's Keras epoch (`steps`), the validation
    accuracy is measured (Keras' own where it validated that epoch), put in the epoch's logs,
    and `report`ed; the run stops where the answer is False (pruned), or at `pace`'s cap.
    `reached`: the index of the last rung reported; `pruned`: whether the report stopped it."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, steps: list[int],
                 report: Callable[[int, float], bool], pace: Pace | None = None,
                 x_sample: np.ndarray | None = None) -> None:
        super().__init__()
        self.x, self.y, self.steps, self.report, self.pace = x_val, y_val, list(steps), report, pace
        self.sample = x_sample
        self.reached, self.pruned, self.value = -1, False, float("nan")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = epoch + 1
        if step not in self.steps:
            return
        logs = logs if logs is not None else {}
        if self.sample is not None and recalibrate(self.model, self.sample):
            logs.pop("val_accuracy", None)  # Keras measured it with the stale statistics
        if "val_accuracy" not in logs:
            logs["val_accuracy"] = accuracy(self.model, self.x, self.y)
        self.reached, self.value = self.steps.index(step), float(logs["val_accuracy"])
        if not self.report(step, self.value):
            self.pruned = self.model.stop_training = True
        elif self.pace and self.pace.cap is not None and step >= self.pace.cap:
            self.model.stop_training = True

    @property
    def capped(self) -> bool:
        """Stopped at a rung short of the last because the run could not afford more."""
        return not self.pruned and 0 <= self.reached < len(self.steps) - 1


def recalibrate(model: keras.Model, x_sample: np.ndarray) -> bool:
    """Batch norm's inference statistics set to those of `x_sample` under the current weights
    ("precise BN", Wu & Johnson 2021): its moving averages lag weights that move fast, and a
    few dozen steps in, a batch-norm network measured with them is near chance (0.17-0.19 on
    validation at 1/8 epoch, where its training accuracy was 0.46-0.50), so a first rung would
    prune every batch-norm model. One pass in training mode with momentum 0 replaces them;
    training itself uses batch statistics and is unchanged. False: no batch norm."""
    norms = [layer for layer in nested(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return False
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        model(keras.ops.convert_to_tensor(x_sample), training=True)
    finally:
        for layer, m in zip(norms, momenta, strict=True):
            layer.momentum = m
    return True


def nested(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """`layer` and every layer inside it (the trained model holds the network as a layer)."""
    return [layer, *(inner for sub in getattr(layer, "layers", []) for inner in nested(sub))]


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
