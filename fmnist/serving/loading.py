"""Any model reference -> a loaded model with its classes and photo steps: a `.keras` file,
a keras-flavour MLflow model (what fmnist.train logs) or a PhotoClassifier (what the sweeps
and fmnist.finetune register), by path, `runs:/`, `models:/` or `best`. Only Keras files
(with `safe_mode`) and YAML are read: nothing in a model is unpickled or run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import keras
import mlflow
from mlflow.exceptions import MlflowException
from pydantic import ValidationError

from fmnist.config import PhotoSettings
from fmnist.errors import NoModelError
from fmnist.images.reading import reason
from fmnist.serving.classifier import CODE, KERAS_ARTIFACT, load_keras_file, model_settings
from fmnist.training.data import CLASS_NAMES
from fmnist.training.model import CUSTOM_OBJECTS


@dataclass(frozen=True)
class Classifier:
    """A loaded model with what it needs to answer photos: its class names and, for a model
    that carries them, the photo steps it was trained with (None: the caller's settings)."""

    model: keras.Model
    classes: tuple[str, ...] = CLASS_NAMES
    photo: Optional[PhotoSettings] = None

    def check(self, steps: PhotoSettings, ref: str) -> None:
        """NoModelError unless the model takes the input `steps` make and gives one probability
        per class: a Keras file from elsewhere may take anything, and would fail only on the
        first batch, with a traceback."""
        model = self.model
        with unloadable(ref):  # a model whose shapes Keras cannot tell
            takes = tuple(model.input_shape[1:]) if len(model.inputs) == 1 else "several"
            gives = tuple(model.output_shape[1:]) if len(model.outputs) == 1 else "several"
        if takes != steps.shape:
            raise NoModelError(f"{ref}: takes {takes} inputs, not the {steps.shape} that photo.input={steps.input} "
                               f"photo.size={steps.size} make (a model of this project takes (size, size, 1 or 3))")
        if gives != (len(self.classes),):
            raise NoModelError(f"{ref}: gives {gives} outputs, not one probability for each of "
                               f"{len(self.classes)} classes")


def resolve(ref: str, registered_model: str) -> str:
    """`best` -> the registry alias; other references pass through."""
    return f"models:/{registered_model}@best" if ref == "best" else ref


def load_keras(ref: str, registered_model: str) -> keras.Model:
    """The Keras model behind any reference (see `load_classifier`)."""
    return load_classifier(ref, registered_model).model


def load_classifier(ref: str, registered_model: str) -> Classifier:
    """A model from a `.keras` file, a keras-flavour MLflow model (what fmnist.train logs)
    or a PhotoClassifier (what the sweeps register, with its classes and photo steps);
    `best` is `registered_model`'s alias (mlflow.registered_model in the YAML). Only
    Keras files (with `safe_mode`) and YAML are read: nothing in the model is unpickled or
    run, so a model in a store anyone can write to cannot run code here."""
    uri = resolve(ref, registered_model)
    if "://" not in uri and ":/" not in uri:
        return Classifier(load_file(Path(uri)))
    if no_store():
        raise NoModelError(missing_message(ref, uri, registered_model, FileNotFoundError("no store")))
    with unloadable(uri):
        try:
            flavors = mlflow.models.get_model_info(uri).flavors
        except (MlflowException, OSError) as e:
            raise NoModelError(missing_message(ref, uri, registered_model, e)) from None
        if "keras" in flavors:
            return Classifier(load_keras_flavour(uri, flavors["keras"]))
        return load_photo_classifier(uri, photo_flavour(uri, flavors))


@contextmanager
def unloadable(what: str) -> Iterator[None]:
    """Any failure to load `what` becomes a NoModelError: one line naming it and the reason.
    Keras, MLflow and the zip, HDF5 and YAML readers under them raise many kinds, and the
    callers rely on NoModelError alone: predict's one `error: model:` line, the registry's
    holder that is skipped rather than ending a sweep."""
    try:
        yield
    except NoModelError:
        raise
    except Exception as e:  # noqa: BLE001 - see above
        raise NoModelError(f"{what}: cannot load ({reason(e)})") from None


def load_keras_flavour(uri: str, flavour: dict[str, Any]) -> keras.Model:
    """What fmnist.train logs: a `.keras` file, which MLflow's keras flavour reads with Keras
    itself (`safe_mode` on). A TensorFlow SavedModel export is refused: fmnist never logs one."""
    if flavour.get("save_exported_model"):
        raise NoModelError(f"{uri}: a TensorFlow SavedModel export, not a .keras model")
    with unloadable(uri):
        return mlflow.keras.load_model(uri, custom_objects=CUSTOM_OBJECTS, load_model_kwargs={"safe_mode": True})


def photo_flavour(uri: str, flavors: dict[str, Any]) -> dict[str, Any]:
    """The pyfunc flavour of a PhotoClassifier logged as code, read from the MLmodel file
    alone; a pickled pyfunc is refused unopened, since unpickling runs whatever it holds."""
    pyfunc = flavors.get("python_function", {})
    if "python_model" in pyfunc:
        raise NoModelError(f"{uri}: a pickled pyfunc model, not loaded (unpickling would run any code it "
                           "holds); log it again with this version of fmnist, which logs models as code")
    code = Path(str(pyfunc.get("model_code_path", ""))).name
    if code != CODE.name or KERAS_ARTIFACT not in (pyfunc.get("artifacts") or {}):
        raise NoModelError(f"{uri}: neither a Keras model nor a PhotoClassifier")
    return pyfunc


def load_photo_classifier(uri: str, pyfunc: dict[str, Any]) -> Classifier:
    """The Keras file and config of a PhotoClassifier, read as `PhotoClassifier.load_context`
    reads them, without running the model's copy of its code."""
    try:
        photo, classes = model_settings(pyfunc["config"])
        artifact = str(pyfunc["artifacts"][KERAS_ARTIFACT]["path"])
    except (KeyError, TypeError, ValidationError) as e:
        raise NoModelError(f"{uri}: not a PhotoClassifier's config ({reason(e)})") from None
    with tempfile.TemporaryDirectory() as tmp, unloadable(uri):
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)).resolve()
        keras_file = (root / artifact).resolve()
        if not keras_file.is_relative_to(root):
            raise NoModelError(f"{uri}: its Keras file lies outside the model")
        return Classifier(load_keras_file(keras_file), classes, photo)  # unloadable: named by its URI


def load_file(path: Path) -> keras.Model:
    """A `.keras` file named by its path; a missing or unreadable one is a NoModelError."""
    if not path.is_file():
        raise NoModelError(f"{path}: no such model file (a .keras file, or best, models:/..., runs:/...)")
    with unloadable(str(path)):
        return load_keras_file(path)


def no_store() -> bool:
    """A SQLite store that does not exist yet: MLflow would create an empty one, here."""
    tracking = mlflow.get_tracking_uri()
    return tracking.startswith("sqlite:///") and not Path(tracking.removeprefix("sqlite:///")).exists()


def missing_message(ref: str, uri: str, registered_model: str, error: Exception) -> str:
    """The one line a missing model gets; a missing `best` means no sweep has registered one."""
    if ref == "best" or uri.startswith(f"models:/{registered_model}@"):
        return (f"no model registered as {uri} in {mlflow.get_tracking_uri()}; "
                f"run `python -m fmnist.sweep` first (or pass model=runs:/RUN_ID/model or model=FILE.keras)")
    return f"{uri}: cannot load ({reason(error)})"
