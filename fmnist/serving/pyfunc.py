"""The served model's code, logged as code (MLflow's models-from-code) rather than pickled.

`log_photo_model` logs this file; `mlflow models serve` runs the model's copy of it, which
imports the installed `fmnist` and hands MLflow a fresh PhotoClassifier, so nothing is
unpickled. `python -m fmnist.predict` runs not even that copy: it reads the model's config and
Keras file (with `safe_mode`) itself (`fmnist.serving.loading.load_classifier`).
"""

import mlflow

from fmnist.serving.classifier import PhotoClassifier

mlflow.models.set_model(PhotoClassifier())
