"""Logging Keras models to MLflow in the Keras 3 `.keras` format."""

from __future__ import annotations

import re
from importlib.metadata import packages_distributions, version

import keras
import mlflow
import numpy as np
from mlflow.models import infer_signature


def requirements(*extra: str) -> list[str]:
    """Pinned explicitly: MLflow's own inference reloads the model in a subprocess (slow).
    The backend is the one this process trains with (a JAX machine need not have TensorFlow),
    named by the distribution that installed it (`tensorflow-cpu` provides `tensorflow`)."""
    backend = keras.backend.backend()
    installed = re.sub(r"[-_.]+", "-", packages_distributions().get(backend, [backend])[0]).lower()  # PEP 503 name
    return [f"{p}=={version(p)}" for p in ("keras", installed, "numpy", *extra)]


def log_keras_model(model: keras.Model, example: np.ndarray, name: str = "model") -> str:
    """Log `model` under the active run; returns its `models:/m-...` URI."""
    info = mlflow.keras.log_model(
        model, name=name, signature=infer_signature(example, keras.ops.convert_to_numpy(model(example, training=False))),
        pip_requirements=requirements(),
    )
    return info.model_uri
