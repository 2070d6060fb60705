"""A photo model checked on a labelled folder it never selected on: accuracy over all classes
and per class, and what `predict.min_confidence` does before and after calibration.

    python bench/photo_check.py MODEL_REF CHECK_DIR [--threshold 0.5] [--store URI]

MODEL_REF is anything `fmnist.predict model=` takes (models:/fmnist-photos@best, runs:/...);
CHECK_DIR holds the model's class folders (../shared/real-photos/validation). Photos are
prepared with the model's own photo steps. "Before calibration" is the network inside the
logged model's final `Temperature` layer; a model without one has only the "after" row.
Prints markdown tables: per class, and flagged share / accuracy on the kept photos / ECE.
"""

from __future__ import annotations

import argparse

import keras
import mlflow
import numpy as np

from fmnist.config import Limits, from_yaml, packaged
from fmnist.photos.photoset import PhotoCache, prepare_all, scan
from fmnist.serving.classifier import probabilities
from fmnist.serving.loading import load_classifier
from fmnist.training.calibration import Temperature, expected_calibration_error

CACHE = "~/.cache/fmnist/photos"


def uncalibrated(model: keras.Model) -> keras.Model | None:
    """The model without its final Temperature layer, or None if it has none."""
    last = model.layers[-1]
    return keras.Model(model.inputs, last.input) if isinstance(last, Temperature) else None


def coverage_row(name: str, probs: np.ndarray, labels: np.ndarray, threshold: float) -> str:
    confident = probs.max(1) >= threshold
    right = probs.argmax(1) == labels
    kept = float(right[confident].mean()) if confident.any() else float("nan")
    return (f"| {name} | {1 - confident.mean():.1%} | {kept:.1%} ({confident.sum()}) | "
            f"{expected_calibration_error(probs, labels):.3f} | {float(right.mean()):.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("folder")
    parser.add_argument("--threshold", type=float, default=packaged("predict.yaml")["predict"]["min_confidence"])
    parser.add_argument("--store", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    args = parser.parse_args()
    if args.store:
        mlflow.set_tracking_uri(args.store)
    clf = load_classifier(args.model, "fmnist-photos")
    photos = scan(args.folder, clf.classes)
    x, kept = prepare_all(photos.files, PhotoCache(CACHE, clf.photo, from_yaml(Limits, "limits/default.yaml")), 2)
    labels = photos.labels[kept]
    probs = probabilities(clf.model, x)
    right = probs.argmax(1) == labels
    print(f"{args.model} on {args.folder}: {right.mean():.1%} ({right.sum()}/{len(labels)})\n")
    print("| " + " | ".join(clf.classes) + " |\n|" + " --- |" * len(clf.classes))
    print("| " + " | ".join(f"{right[labels == c].mean():.1%} ({right[labels == c].sum()}/{(labels == c).sum()})"
                            for c in range(len(clf.classes))) + " |\n")
    print(f"| probabilities | flagged below {args.threshold} | accuracy on the kept (photos) | ECE | accuracy |")
    print("| --- | --- | --- | --- | --- |")
    inner = uncalibrated(clf.model)
    if inner is not None:
        print(coverage_row("before calibration", probabilities(inner, x), labels, args.threshold))
    print(coverage_row("as logged" + (" (calibrated)" if inner is not None else ""), probs, labels, args.threshold))


if __name__ == "__main__":
    main()
