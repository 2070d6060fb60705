"""Ways to classify a user's photos, side by side on held-out photos.

    python bench/finetune.py TRAIN_DIR VALIDATION_DIR [--base best] [--epochs 30] [--registered fmnist-photos]
                             [--imagenet NAME ...]

TRAIN_DIR and VALIDATION_DIR hold one subfolder per class (../shared/real-photos/train and
validation/). Each recipe fine-tunes on TRAIN_DIR (selecting on its own split, as the
command does) into the MLflow experiment `bench-finetune`, registered under a name of its
own so the user's `fmnist-photos` is untouched; then every model, and the photo sweep's
registered `fmnist-photos@best`, is scored on VALIDATION_DIR: accuracy over all classes
and per class, and the minutes each took. Zero-shot is the Fashion-MNIST model itself with
the folders mapped to its classes as in bench/real_photos.py (no class: always wrong).
`--imagenet NAME` adds a start from keras.applications' NAME with ImageNet weights (downloaded
into ~/.keras/models on first use: a machine with internet, once).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mlflow
import numpy as np
from real_photos import ACCEPTED

from fmnist.config import Limits, PhotoSettings, from_yaml
from fmnist.config.loading import checked
from fmnist.errors import NoModelError
from fmnist.photos.finetuning import finetune
from fmnist.photos.photoset import PhotoCache, PhotoSet, prepare_all, scan
from fmnist.serving.classifier import probabilities
from fmnist.serving.loading import Classifier, load_classifier
from fmnist.training.data import CLASS_NAMES

PLAIN = checked("train", [])
CACHE, FMNIST = PLAIN.finetune.cache, PLAIN.mlflow.registered_model  # FMNIST: what `best` names for a start


def recipes(base: str, epochs: int, imagenet: list[str]) -> dict[str, list[str]]:
    """name -> fmnist.finetune overrides. An ImageNet start takes experiment=finetune's photos
    and augmentation, warms its new classifier up for 3 epochs, then trains all layers at a
    lower rate than from scratch (the usual advice for pretrained weights; not tuned here)."""
    common = [f"trainer.epochs={epochs}", "finetune.augment.flip=true", "finetune.augment.shift=0.05"]
    pretrained = {f"ImageNet {name}, 96x96 colour, fine-tune all (3 epochs warm-up)": [
        "experiment=finetune", f"model=imagenet:{name}", "finetune.trainable=all", "finetune.warmup_epochs=3",
        "model.learning_rate=0.0003", f"trainer.epochs={epochs}"] for name in imagenet}
    return {
        "frozen network, new classifier": [f"model={base}", "finetune.trainable=classifier", *common],
        "fine-tune all (3 epochs warm-up)": [f"model={base}", "finetune.trainable=all", "finetune.warmup_epochs=3",
                                             *common],
        "from scratch, same network, 28x28": ["model=none", *common],
        "from scratch, experiment=finetune's network, 64x64 colour": [
            "experiment=finetune", "model=none", "photo.size=64", f"trainer.epochs={epochs}"],
        **pretrained,
    }


def predicted(clf: Classifier, photos: PhotoSet) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted class names) of the readable photos, prepared as the model expects."""
    x, kept = prepare_all(photos.files, PhotoCache(CACHE, clf.photo or from_yaml(PhotoSettings, "photo/default.yaml"),
                                                             from_yaml(Limits, "limits/default.yaml")), workers=2)
    names = np.array(clf.classes)[probabilities(clf.model, x).argmax(1)]
    return photos.labels[kept], names


def per_class(photos: PhotoSet, labels: np.ndarray, correct: np.ndarray) -> list[float]:
    return [float(correct[labels == c].mean()) if (labels == c).any() else float("nan")
            for c in range(len(photos.classes))]


def score_same_classes(clf: Classifier, photos: PhotoSet) -> list[float]:
    labels, names = predicted(clf, photos)
    correct = names == np.array(photos.classes)[labels]
    return [float(correct.mean()), *per_class(photos, labels, correct)]


def score_zero_shot(clf: Classifier, photos: PhotoSet) -> list[float]:
    labels, names = predicted(clf, photos)
    accepted = [{CLASS_NAMES[i] for i in ACCEPTED.get(name, set())} for name in photos.classes]
    correct = np.array([n in accepted[y] for y, n in zip(labels, names, strict=False)])
    return [float(correct.mean()), *per_class(photos, labels, correct)]


def run_recipe(overrides: list[str], train_dir: Path) -> tuple[Classifier, float]:
    cfg = checked("finetune", [*overrides, f"photos={train_dir}", "mlflow.experiment=bench-finetune",
                          "finetune.registered_model=bench-finetune", "trainer.verbose=0"])
    start = time.perf_counter()
    run_id = finetune(cfg)
    minutes = (time.perf_counter() - start) / 60
    return load_classifier(mlflow.get_run(run_id).data.tags["model_uri"], cfg.finetune.registered_model), minutes


def row(name: str, scores: list[float], minutes: float | None) -> str:
    cells = " | ".join("" if np.isnan(s) else f"{s:.1%}" for s in scores[1:])
    took = "" if minutes is None else f"{minutes:.1f}"
    return f"| {name} | **{scores[0]:.1%}** | {cells} | {took} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("validation", type=Path)
    parser.add_argument("--base", default="best", help="the Fashion-MNIST model to start from (fmnist.predict model=)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--registered", default="models:/fmnist-photos@best", help="the photo sweep's model")
    parser.add_argument("--imagenet", action="append", default=[], metavar="NAME",
                        help="also fine-tune keras.applications' NAME from ImageNet weights (e.g. MobileNetV3Small)")
    args = parser.parse_args()
    photos = scan(args.validation)
    print(f"| recipe | all ({len(photos.files)} photos) | " + " | ".join(photos.classes) + " | minutes |")
    print("|" + " --- |" * (len(photos.classes) + 3))
    print(row(f"zero-shot: {args.base} (Fashion-MNIST classes mapped)",
              score_zero_shot(load_classifier(args.base, FMNIST), photos), 0.0), flush=True)
    for name, overrides in recipes(args.base, args.epochs, args.imagenet).items():
        clf, minutes = run_recipe(overrides, args.train)
        print(row(name, score_same_classes(clf, scan(args.validation, clf.classes)), minutes), flush=True)
    try:
        sweep_model = load_classifier(args.registered, FMNIST)
    except NoModelError as e:
        print(f"| photo sweep's model: {e} | | |")
        return
    print(row(f"photo sweep's model ({args.registered})", score_same_classes(sweep_model, scan(args.validation,
              sweep_model.classes)), sweep_minutes(args.registered)))


def sweep_minutes(ref: str) -> float | None:
    """The wall minutes of the sweep that registered `ref` (its parent run's sweep_minutes)."""
    client = mlflow.MlflowClient()
    name, _, alias = ref.removeprefix("models:/").partition("@")
    version = client.get_model_version_by_alias(name, alias) if alias else None
    source = version and version.tags.get("source_run")
    parent = source and client.get_run(source).data.tags.get("mlflow.parentRunId")
    return parent and client.get_run(parent).data.metrics.get("sweep_minutes")


if __name__ == "__main__":
    main()
