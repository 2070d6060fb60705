"""Real-photo accuracy of a model, with our preprocessing and with the original recipe.

    python bench/real_photos.py MODEL_REF PHOTOS_DIR [photo.floor=0.2 ...]

MODEL_REF is anything `fmnist.predict model=` takes (best, models:/..., runs:/..., FILE.keras);
PHOTOS_DIR holds one folder per garment type (../shared/real-photos, or its validation/).
Extra arguments override conf/predict.yaml, as on the predict command line.

"Real-photo accuracy" is defined in the photos' README: the share of photos in the seven
labelled folders whose predicted class is among the accepted ones. The out-of-distribution
folders count how often the prediction is marked low confidence. The original recipe
(grayscale, resize to 28x28, divide by 255; and the same inverted) runs on the same model.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fmnist.config import SIZE, PredictConfig
from fmnist.config.loading import checked
from fmnist.images.preprocess import prepare
from fmnist.images.reading import read_image
from fmnist.photos.predicting import is_image_name
from fmnist.serving.classifier import probabilities
from fmnist.serving.loading import load_keras
from fmnist.training.data import CLASS_NAMES

# The photos' README: folder -> Fashion-MNIST classes counted as correct; empty: no such class.
ACCEPTED = {
    "t-shirt": {0}, "pants": {1}, "dress": {3}, "outwear": {4}, "shirt": {6},
    "longsleeve": {0, 2, 6}, "shoes": {5, 7, 9}, "hat": set(), "shorts": set(), "skirt": set(),
}
RECIPES = ("ours", "original", "original inverted")


def photo_folders(root: Path) -> dict[str, list[Path]]:
    """The README's folders that exist, in its order."""
    base = root / "validation" if (root / "validation").is_dir() else root
    return {name: sorted(p for p in (base / name).iterdir() if is_image_name(p))
            for name in ACCEPTED if (base / name).is_dir()}


def original_recipe(rgb: np.ndarray) -> np.ndarray:
    """What the original project did: grayscale, squash to 28x28, divide by 255."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (SIZE, SIZE)).astype(np.float32) / 255.0


def inputs(path: Path, cfg: PredictConfig) -> np.ndarray:
    """The three recipes' inputs for one photo, stacked."""
    photo = read_image(path, cfg.limits, cfg.photo.work_size)
    plain = original_recipe(photo.rgb)
    return np.stack([prepare(photo, cfg.preprocess, cfg.photo), plain, 1.0 - plain])


def evaluate(model, files: list[Path], cfg: PredictConfig) -> np.ndarray:
    """(recipes, photos, classes) probabilities."""
    with ThreadPoolExecutor(cfg.predict.workers) as pool:
        x = np.stack(list(pool.map(lambda p: inputs(p, cfg), files)))
    return np.stack([probabilities(model, x[:, k]) for k in range(len(RECIPES))])


def pct(a: float) -> str:
    return f"{a:.1%}"


def table(results: dict[str, np.ndarray], min_conf: float) -> list[str]:
    """Markdown: accuracy per labelled folder and in total; low-confidence share per OOD folder."""
    head = "| folder | photos | counted as correct | " + " | ".join(RECIPES) + " |"
    lines = [head, "|" + " --- |" * (3 + len(RECIPES))]
    hits, ood_low, ood_n = np.zeros(len(RECIPES)), np.zeros(len(RECIPES)), 0
    labelled = {k: v for k, v in results.items() if ACCEPTED[k]}
    for name, p in labelled.items():
        ok = np.isin(p.argmax(-1), list(ACCEPTED[name])).sum(1)
        hits += ok
        accepted = ", ".join(CLASS_NAMES[c] for c in sorted(ACCEPTED[name]))
        lines.append(f"| {name} | {p.shape[1]} | {accepted} | " + " | ".join(pct(a) for a in ok / p.shape[1]) + " |")
    n = sum(p.shape[1] for p in labelled.values())
    lines.append(f"| **real-photo accuracy** | **{n}** | | " + " | ".join(f"**{pct(h / n)}**" for h in hits) + " |")
    for name, p in results.items():
        if not ACCEPTED[name]:
            low = (p.max(-1) < min_conf).sum(1)
            ood_low, ood_n = ood_low + low, ood_n + p.shape[1]
            lines.append(f"| {name} (no class) | {p.shape[1]} | marked low confidence | "
                         + " | ".join(pct(a) for a in low / p.shape[1]) + " |")
    if ood_n:
        lines.append(f"| **out of distribution** | **{ood_n}** | marked low confidence | "
                     + " | ".join(f"**{pct(a)}**" for a in ood_low / ood_n) + " |")
    false_alarm = sum((p.max(-1) < min_conf).sum(1) for p in labelled.values()) / n
    lines.append(f"| labelled photos | {n} | marked low confidence | " + " | ".join(pct(a) for a in false_alarm) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="best | models:/NAME/VERSION | models:/NAME@ALIAS | runs:/ID/model | FILE.keras")
    parser.add_argument("photos", type=Path, help="folder of garment-type folders (../shared/real-photos)")
    parser.add_argument("overrides", nargs="*", help="conf/predict.yaml overrides, e.g. photo.floor=0.2")
    args = parser.parse_args()
    cfg = checked("predict", [*args.overrides, f"images={args.photos}"])
    if cfg.mlflow.tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    model = load_keras(args.model, cfg.mlflow.registered_model)
    results = {name: evaluate(model, files, cfg) for name, files in photo_folders(args.photos).items()}
    if not results:
        sys.exit(f"error: {args.photos}: no folders named {', '.join(ACCEPTED)}")
    print(f"model {args.model}; min_confidence {cfg.predict.min_confidence:g}; photo settings "
          + " ".join(f"{k}={v}" for k, v in cfg.photo.model_dump().items()))
    print("\n".join(table(results, cfg.predict.min_confidence)))


if __name__ == "__main__":
    main()
