"""The model as a photo classifier: an MLflow pyfunc that owns its preprocessing.

A plain Keras model answers 28x28 arrays, which no client has; `PhotoClassifier` answers
photos (base64 image bytes), so `mlflow models serve` gives a usable HTTP endpoint and the
preprocessing can never drift from the model it was logged with. Loading any model
reference (a file, a run, the registry) is fmnist/serving/loading.py.
"""

from __future__ import annotations

import base64
import binascii
import math
import tempfile
from pathlib import Path
from typing import Any, Sequence

import keras
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from fmnist.batches import outputs
from fmnist.config import Limits, Mode, PhotoSettings, from_yaml, packaged
from fmnist.errors import ImageError
from fmnist.images.preprocess import blank, prepare
from fmnist.images.reading import decoded_pixels, image_errors, read_image, reason
from fmnist.training.data import CLASS_NAMES
from fmnist.training.model import CUSTOM_OBJECTS
from fmnist.training.modelio import requirements

# Pinned beside the Keras stack. The `fmnist` package itself must be importable where the
# model is served (`--env-manager local`).
SERVING_EXTRAS = ("pandas", "opencv-python-headless", "pillow", "pydantic", "omegaconf")
# The served model's code, logged as a file (models-from-code), and the name of its Keras file.
CODE = Path(__file__).with_name("pyfunc.py")
KERAS_ARTIFACT = "keras_model"

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.string, "image")]),
    outputs=Schema([
        ColSpec(DataType.long, "class_id"), ColSpec(DataType.string, "class_name"),
        ColSpec(DataType.double, "confidence"), ColSpec(Array(DataType.double), "probabilities"),
        ColSpec(DataType.string, "error"),
    ]),
)


def probabilities(model: keras.Model, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, H, W) gray or (N, H, W, 3) colour inputs -> (N, classes) softmax rows, by direct
    calls (`batches.outputs`): no input pipeline to set up, which matters for a handful of photos."""
    inputs = inputs[..., None] if inputs.ndim == 3 else inputs
    if not len(inputs):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return outputs(model, inputs, batch_size)


class PhotoClassifier(mlflow.pyfunc.PythonModel):
    """Keras model + photo preprocessing + class names. Input: a DataFrame with a column
    `image` of base64-encoded image files. Output, one row per image: class_id, class_name,
    confidence, probabilities (one per class), and error (empty, or why the image was not
    classified). The class names and photo steps live in the logged model's config, so a
    model fine-tuned on a user's own classes answers with them."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = load_keras_file(Path(context.artifacts[KERAS_ARTIFACT]))
        cfg = context.model_config
        self.photo, self.classes = model_settings(cfg)
        self.limits = model_limits(cfg)
        self.mode: Mode = cfg["preprocess"]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        """The answer, or one line saying why the request was refused; never the server's stack
        trace (MLflow sends it back for any exception but its own)."""
        try:
            return self.answer(pd.DataFrame(model_input))
        except MlflowException:
            raise
        except Exception as e:  # noqa: BLE001 - per-image failures are rows already; this is the rest
            raise MlflowException(f"the model could not answer this request ({type(e).__name__}: {reason(e)})") \
                from None

    def answer(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.check_request(frame)
        inputs, errors = [], []
        for value in frame["image"]:
            try:
                inputs.append(self.prepare(value))
                errors.append("")
            except ImageError as e:
                inputs.append(blank(self.photo))
                errors.append(str(e))
        empty = np.zeros((0, *blank(self.photo).shape), np.float32)
        return answer(probabilities(self.model, np.stack(inputs) if inputs else empty), errors, self.classes)

    def check_request(self, frame: pd.DataFrame) -> None:
        """Refuse the request whole, before any image is decoded, when it is malformed or over
        a per-request cap. The caps on bytes bound memory, not time: a small PNG may decode
        to 50 megapixels, so the pixels decoding would make (read from each header) are
        bounded too, and a request is answered within MLflow's request timeout. Refused whole,
        as max_images is, rather than answering the first images and not the rest: an image's
        answer then never depends on what was sent beside it, and the client's remedy is the
        same (smaller requests)."""
        if "image" not in frame:
            raise MlflowException.invalid_parameter_value("input needs a column 'image' of base64 image bytes")
        limits = self.limits
        if len(frame) > limits.max_images:
            raise MlflowException.invalid_parameter_value(
                f"{len(frame)} images in one request, above limits.max_images={limits.max_images}; "
                "send them in smaller requests")
        pixels = sum(self.pixels(value) for value in frame["image"])
        if pixels > limits.max_request_pixels:
            raise MlflowException.invalid_parameter_value(
                f"{pixels} pixels to decode in one request, above limits.max_request_pixels="
                f"{limits.max_request_pixels}; send fewer or smaller images per request")

    def pixels(self, value: Any) -> int:
        """What decoding this image would cost, from its header; 0 for one that will not be
        decoded (its row says why)."""
        try:
            return decoded_pixels(decode_base64(value, self.limits), self.limits, self.photo.work_size)
        except ImageError:
            return 0

    def prepare(self, value: Any) -> np.ndarray:
        with image_errors():
            data = decode_base64(value, self.limits)
            return prepare(read_image(data, self.limits, self.photo.work_size), self.mode, self.photo)


def model_settings(cfg: dict[str, Any]) -> tuple[PhotoSettings, tuple[str, ...]]:
    """A PhotoClassifier's photo steps and class names from its logged config (`serving_config`),
    read the same way by the served model and by `fmnist.predict`."""
    return PhotoSettings.model_validate(cfg["photo"]), tuple(str(c) for c in cfg["classes"])


def model_limits(cfg: dict[str, Any]) -> Limits:
    """A PhotoClassifier's limits from its logged config; a limit added since it was logged
    (limits.max_request_pixels) takes conf/limits/'s value, so older models still serve."""
    return from_yaml(Limits, "limits/default.yaml", **cfg["limits"])


def decode_base64(value: Any, limits: Limits) -> bytes:
    """The request's image field -> file bytes; JSON has no bytes type, hence base64. A string
    longer than limits.max_bytes needs in base64 is refused before it is decoded (the decoded
    bytes meet limits.max_bytes again when read)."""
    if isinstance(value, bytes):
        return value
    text, most = str(value), 4 * math.ceil(limits.max_bytes / 3)
    if len(text) > most:
        raise ImageError(f"'image' is {len(text)} base64 characters, above the {most} "
                         f"that limits.max_bytes={limits.max_bytes} allows")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("'image' is not base64-encoded image bytes") from None


def answer(probs: np.ndarray, errors: list[str], classes: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """One row per image; a failed image gets class_id -1 and its error. The served model's
    response (SIGNATURE's outputs), and the middle of `python -m fmnist.predict`'s CSV/JSON rows,
    so the endpoint and the files cannot drift apart."""
    ids = probs.argmax(1) if len(probs) else np.zeros(0, int)
    return pd.DataFrame({
        "class_id": [int(i) if not e else -1 for i, e in zip(ids, errors, strict=True)],
        "class_name": [classes[i] if not e else "" for i, e in zip(ids, errors, strict=True)],
        "confidence": [float(p[i]) if not e else 0.0 for p, i, e in zip(probs, ids, errors, strict=True)],
        "probabilities": [[float(v) for v in p] if not e else [] for p, e in zip(probs, errors, strict=True)],
        "error": errors,
    })


def serving_config(photo: PhotoSettings | None = None, classes: Sequence[str] = CLASS_NAMES,
                   limits: Limits | None = None) -> dict[str, Any]:
    """What the served model needs besides weights: its class names and photo steps (the
    ones it was trained with, else conf/photo/'s) and its limits (else
    conf/limits/'s), checked, so a logged model treats photos exactly as
    `python -m fmnist.predict` does."""
    predict = packaged("predict.yaml")
    return {
        "photo": (photo or from_yaml(PhotoSettings, "photo/default.yaml")).model_dump(),
        "limits": (limits or from_yaml(Limits, "limits/default.yaml")).model_dump(),
        "preprocess": predict.get("preprocess", "auto"),
        "classes": list(classes),
    }


def log_photo_model(keras_model: keras.Model, name: str = "model", photo: PhotoSettings | None = None,
                    classes: Sequence[str] = CLASS_NAMES, limits: Limits | None = None) -> str:
    """Log `keras_model` wrapped as a PhotoClassifier under the active run; returns its URI.
    Logged as code (fmnist/serving/pyfunc.py), not as a pickle: loading it unpickles nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        keras_model.save(path)
        info = mlflow.pyfunc.log_model(
            name=name, python_model=str(CODE), artifacts={KERAS_ARTIFACT: str(path)},
            model_config=serving_config(photo, classes, limits), signature=SIGNATURE,
            pip_requirements=requirements(*SERVING_EXTRAS),
        )
    return info.model_uri


def load_keras_file(path: Path) -> keras.Model:
    """A `.keras` file with `safe_mode` (no Lambda layer's bytecode is loaded): the served model's
    and every loader's one way in."""
    return keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=CUSTOM_OBJECTS)
