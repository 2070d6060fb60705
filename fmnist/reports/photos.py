"""The reports of a model fine-tuned on a user's photos: learning curves, the confusion
matrix over the user's own classes on the validation photos, and the most confident
mistakes shown as the photos themselves (what the user recognises, not 28x28 inputs)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
from PIL import Image

from fmnist.config import Limits
from fmnist.errors import ImageError
from fmnist.images.reading import read_image
from fmnist.reports.calibration import write_reliability
from fmnist.reports.confusion import write_confusion
from fmnist.reports.curves import write_curves
from fmnist.reports.mistakes import write_mistakes
from fmnist.reports.run import ARTIFACT_PATH, collector_paused

THUMB = 64


def thumbnails(files: list[Path], limits: Limits) -> np.ndarray:
    """(N, THUMB, THUMB, 3) in [0, 1]: each photo shrunk onto a white square, aspect kept."""
    out = np.ones((len(files), THUMB, THUMB, 3), np.float32)
    for i, f in enumerate(files):
        try:
            image = Image.fromarray(read_image(f, limits, target=THUMB).rgb)
        except ImageError:
            continue  # it was read for training; a file changed since stays a white tile
        image.thumbnail((THUMB, THUMB))
        top, left = (THUMB - image.height) // 2, (THUMB - image.width) // 2
        out[i, top: top + image.height, left: left + image.width] = np.asarray(image) / 255.0
    return out


def write_photo_reports(history: dict[str, list[float]], y_val: np.ndarray, probs: np.ndarray,
                        classes: tuple[str, ...], files: list[Path], limits: Limits, mistakes: int,
                        out: Path, calibration: tuple[np.ndarray, float] | None = None) -> list[Path]:
    """`calibration`: the probabilities before temperature scaling and the temperature, for
    the reliability diagram (`probs` are then the calibrated ones)."""
    return [*write_curves(history, out),
            *write_confusion(y_val, probs.argmax(1), classes, out),
            *write_mistakes(lambda picked: thumbnails([files[i] for i in picked], limits), y_val, probs, classes,
                            mistakes, out, what="validation-photo"),
            *(write_reliability(calibration[0], probs, y_val, calibration[1], out) if calibration else [])]


def log_photo_reports(history: dict[str, list[float]], y_val: np.ndarray, probs: np.ndarray,
                      classes: tuple[str, ...], files: list[Path], limits: Limits, mistakes: int,
                      calibration: tuple[np.ndarray, float] | None = None) -> None:
    """Drawn and logged under `reports/` of the active run; a failure is a warning, not a failed run."""
    try:
        with tempfile.TemporaryDirectory(prefix="fmnist-reports-") as tmp, collector_paused():
            write_photo_reports(history, y_val, probs, classes, files, limits, mistakes, Path(tmp), calibration)
            mlflow.log_artifacts(tmp, ARTIFACT_PATH)
    except Exception as e:  # noqa: BLE001 - a picture must not fail the run it describes
        message = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        print(f"warning: reports not logged: {message}", file=sys.stderr)
        mlflow.set_tag("report_error", message)
