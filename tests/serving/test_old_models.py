"""A PhotoClassifier logged before fmnist/serving/ existed carries its own copy of pyfunc.py,
which imports `fmnist.photos.serving`. `fmnist.predict` reads its Keras file and config without
running that copy; `mlflow models serve` runs it, so fmnist/photos/serving.py keeps the name."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import keras
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import Model

from fmnist.serving import classifier
from fmnist.serving.classifier import log_photo_model
from fmnist.serving.loading import load_classifier

OLD_CODE = '''import mlflow

from fmnist.photos.serving import PhotoClassifier

mlflow.models.set_model(PhotoClassifier())
'''


def test_a_model_logged_with_the_old_module_path_still_loads_and_serves(store, tmp_path, monkeypatch):
    old = tmp_path / "old" / "pyfunc.py"
    old.parent.mkdir()
    old.write_text(OLD_CODE)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    mlflow.set_experiment("old")  # this store's, not one a test before left active
    with mlflow.start_run(), monkeypatch.context() as m:
        m.setattr(classifier, "CODE", old)  # what log_photo_model logged before issue 23
        uri = log_photo_model(model)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "logged")))
    copy = local / Model.load(local / "MLmodel").flavors["python_function"]["model_code_path"]
    assert copy.read_text() == OLD_CODE
    assert load_classifier(uri, "fmnist-cnn").model.output_shape == (None, 10)  # fmnist.predict's way in
    served = mlflow.pyfunc.load_model(uri)  # what `mlflow models serve` runs: the model's own copy
    png = cv2.imencode(".png", np.full((28, 28), 128, np.uint8))[1].tobytes()
    answer = served.predict(pd.DataFrame({"image": [base64.b64encode(png).decode()]}))
    assert answer["error"][0] == "" and 0 <= int(answer["class_id"][0]) <= 9
