"""A temperature-scaled photo model goes through every way in as any other: its `.keras` file
with `safe_mode`, and the PhotoClassifier logged to MLflow (fmnist.predict's reader and the
served pyfunc), answering the calibrated probabilities it was saved with."""

from __future__ import annotations

import base64

import keras
import mlflow
import numpy as np
import pandas as pd

from fmnist.config import PhotoSettings, from_yaml
from fmnist.serving.classifier import load_keras_file, log_photo_model
from fmnist.serving.loading import load_classifier
from fmnist.training.calibration import calibrated
from fmnist.training.model import mirror_averaged
from tests.conftest import PHOTOS

CLASSES = ("pants", "shoes", "t-shirt")
PHOTO = from_yaml(PhotoSettings, "photo/default.yaml").model_copy(update={"input": "colour", "size": 32})


def photo_model() -> keras.Model:
    """What fine-tuning logs with flips and calibration: calibrated(mirror_averaged(net))."""
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input(PHOTO.shape), keras.layers.Conv2D(4, 3, activation="relu"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(len(CLASSES), "softmax")])
    return calibrated(mirror_averaged(net), 0.6)


def test_a_calibrated_keras_file_loads_with_safe_mode_and_predicts_the_same(tmp_path):
    model = photo_model()
    x = np.random.default_rng(0).random((4, *PHOTO.shape), dtype=np.float32)
    model.save(tmp_path / "calibrated.keras")
    loaded = load_keras_file(tmp_path / "calibrated.keras")
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert loaded.layers[-1].temperature == 0.6


def test_a_calibrated_photo_model_logged_to_mlflow_answers_its_calibrated_probabilities(store):
    model = photo_model()
    mlflow.set_experiment("calibrated")
    with mlflow.start_run():
        uri = log_photo_model(model, photo=PHOTO, classes=CLASSES)
    photos = [next((PHOTOS / c).glob("*.jpg")) for c in CLASSES]
    images = [base64.b64encode(p.read_bytes()).decode() for p in photos]

    served = mlflow.pyfunc.load_model(uri)  # what `mlflow models serve` runs
    x = np.stack([served.unwrap_python_model().prepare(i) for i in images])
    expected = model.predict(x, verbose=0)
    answer = served.predict(pd.DataFrame({"image": images}))
    assert (answer["error"] == "").all()
    assert np.allclose(np.stack(answer["probabilities"]), expected, atol=1e-5)

    read = load_classifier(uri, "fmnist-cnn")  # fmnist.predict's reader: Keras file and YAML, no code run
    assert read.classes == CLASSES
    assert np.allclose(read.model.predict(x, verbose=0), expected, atol=1e-6)
