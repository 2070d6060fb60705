"""One inference pass over the test set that yields both what the reports need:
class probabilities (confusion, mistakes) and the penultimate layer (embeddings)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from fmnist.batches import outputs
from fmnist.training.model import base_model


@dataclass(frozen=True)
class Outputs:
    probabilities: np.ndarray  # (N, classes)
    features: np.ndarray  # (N, D): the input of the classifier layer

    def accuracy(self, labels: np.ndarray) -> float:
        """Share of argmax predictions equal to `labels`: Keras' accuracy metric, without a second pass."""
        return float(np.mean(self.probabilities.argmax(1) == labels))


def with_features(model: keras.Model) -> keras.Model:
    """The same weights, also returning the classifier layer's input (the last hidden
    activations, after any dropout, which is off at inference)."""
    return keras.Model(model.inputs, [model.layers[-1].input, model.outputs[0]])


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 2000) -> Outputs:
    """Features of the trained network; probabilities of `model` itself, which for a
    mirror-averaged model costs one more pass."""
    base = base_model(model)
    features, probs = outputs(with_features(base), x, batch_size)
    if base is not model:
        probs = outputs(model, x, batch_size)
    return Outputs(np.asarray(probs), np.asarray(features).reshape(len(x), -1))
