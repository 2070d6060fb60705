"""Temperature scaling: confidences that mean what they say.

A network trained to low cross-entropy on a few photos is over-confident on new ones: it
says 0.99 where it is right four times in five, so `predict.min_confidence` and the served
`confidence` mislead. Dividing the log-probabilities by one temperature T, fitted on
held-out photos, fixes most of that (Guo et al., 2017) and never changes the argmax, so
accuracy stays what it was. A leaf module (numpy and keras only): the model registry in
fmnist/training/model.py imports the layer from here.
"""

from __future__ import annotations

import math

import keras
import numpy as np

EPS = 1e-7  # the smallest probability taken at face value; log(0) would be -inf
BOUNDS = (0.05, 20.0)  # the temperatures searched: sharpening by 20x to flattening by 20x
STEPS = 80  # golden-section steps: the bracket shrinks to 1e-16 of its width, below float precision


def _checked(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 (N, C) rows and int labels, or one line saying what is wrong."""
    p, y = np.asarray(probs, np.float64), np.asarray(labels).astype(np.int64).reshape(-1)
    if p.ndim != 2 or not len(p) or len(p) != len(y):
        raise ValueError(f"calibration needs (N, classes) probabilities and N labels, N > 0; got {p.shape} and {y.shape}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in [0, {p.shape[1]}); got {y.min()}..{y.max()}")
    return p, y


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(p) / T) row by row: T > 1 flattens, T < 1 sharpens, T = 1 gives `p` back."""
    logs = np.log(np.clip(np.asarray(probs, np.float64), EPS, 1.0))
    return np.exp(_log_softmax(logs / temperature))


def _nll(logs: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return float(-_log_softmax(logs / temperature)[np.arange(len(labels)), labels].mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in BOUNDS that minimises the negative log-likelihood of `scaled(probs, T)`.

    Golden-section search over log T: the NLL is convex in 1/T, hence unimodal in log T, so
    the search needs no gradient, no optimiser state and no seed, and gives the same T for
    the same rows on every machine. A model right on every photo it is fitted on has no
    optimum inside: the search then stops at the sharp end of BOUNDS."""
    p, y = _checked(probs, labels)
    logs = np.log(np.clip(p, EPS, 1.0))
    lo, hi = math.log(BOUNDS[0]), math.log(BOUNDS[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(logs, y, math.exp(a)), _nll(logs, y, math.exp(b))
    for _ in range(STEPS):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(logs, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(logs, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin ((i/bins, (i+1)/bins], the top probability of each row): the mean
    confidence, the accuracy and the number of rows; NaN confidence and accuracy where a bin
    is empty. A calibrated model has accuracy equal to confidence in every bin."""
    p, y = _checked(probs, labels)
    confidence, right = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=bins) / counts
        accuracy = np.bincount(which, right, minlength=bins) / counts
    return mean_conf, accuracy, counts


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """The gap between confidence and accuracy, averaged over the rows (bin by bin, each bin
    weighted by its share of rows): 0 for a calibrated model, 0.2 for one 20 points too sure."""
    mean_conf, accuracy, counts = reliability(probs, labels, bins)
    full = counts > 0
    return float(np.sum(counts[full] * np.abs(accuracy[full] - mean_conf[full])) / counts.sum())


@keras.saving.register_keras_serializable(package="fmnist")
class Temperature(keras.layers.Layer):
    """softmax(log(clip(p, 1e-7, 1)) / T) on probability rows: temperature scaling as a layer,
    so the logged model answers calibrated confidences and loads with `safe_mode` (no Lambda)."""

    def __init__(self, temperature: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def call(self, p):  # noqa: ANN001, ANN201 - Keras tensors
        return keras.ops.softmax(keras.ops.log(keras.ops.clip(p, EPS, 1.0)) / self.temperature, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


def calibrated(model: keras.Model, temperature: float) -> keras.Model:
    """`model` answering temperature-scaled probabilities: one functional model with an input
    "image" and an output layer "probabilities", as every logged model has. For inference:
    not compiled."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    outputs = Temperature(temperature, name="probabilities")(model(inputs))
    return keras.Model(inputs, outputs, name=f"{model.name}_calibrated")
