"""Does training-time augmentation carry a model over to real photos? Side by side.

    python bench/augment_photos.py PHOTOS_DIR [--epochs 20] [--seeds 2 3 4] [--subset N]

Trains one architecture (the default sweep's winner: two blocks of two 3x3 `valid` convs
with batch norm, 64 then 32 filters, dense 256) once per augmentation setting and seed, on
the same Fashion-MNIST split, then prints each model's Fashion-MNIST test accuracy and its
real-photo accuracy (the photos' README; our preprocessing, conf/ defaults),
both mirror-averaged as the logged model is, and each setting's means as ratios of the first
setting's. Seeds differ more than settings do on 290 photos: compare means over seeds.
`KERAS_BACKEND=jax` runs it on a GPU.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from real_photos import ACCEPTED, photo_folders

from fmnist.config import Augment
from fmnist.config.loading import checked
from fmnist.images.preprocess import prepare
from fmnist.images.reading import read_image
from fmnist.serving.classifier import probabilities
from fmnist.training.data import Splits, load_splits
from fmnist.training.fitting import fit, seed_everything
from fmnist.training.model import build_model, mirror_averaged

BLOCK = "convs:2,kernel:3,stride:1,padding:valid,pool:true,batch_norm:true,dropout:0.3"
BASE = checked("train", [f"model.conv_blocks=[{{filters:64,{BLOCK}}},{{filters:32,{BLOCK}}}]",
                            "model.dense=[{units:256,dropout:0.3}]", "model.learning_rate=0.0011",
                            "trainer.batch_size=64", "trainer.lr_schedule=cosine", "trainer.verbose=0"])
ARCHITECTURE = BASE.model
SETTINGS = {
    "flip + 1-px shift": ARCHITECTURE.augment.model_copy(update={"flip": True, "shift": 0.05}),
    "flip + 1-px shift + perspective": ARCHITECTURE.augment.model_copy(update={"flip": True, "shift": 0.05,
                                                                               "perspective": 0.15}),
}


def labelled_photos(root: Path) -> tuple[np.ndarray, list[set[int]]]:
    """Model inputs of the labelled photos and, for each, the classes counted as correct."""
    cfg = checked("predict", [f"images={root}"])
    x, accepted = [], []
    for folder, files in photo_folders(root).items():
        for path in files if ACCEPTED[folder] else []:
            x.append(prepare(read_image(path, cfg.limits, cfg.photo.work_size), cfg.preprocess, cfg.photo))
            accepted.append(ACCEPTED[folder])
    return np.stack(x), accepted


def train_one(aug: Augment, seed: int, epochs: int, subset: int | None, splits: Splits | None = None):
    """One model of ARCHITECTURE with `aug`, on `splits` (default: Fashion-MNIST, `subset` images)."""
    seed_everything(seed)
    splits = splits or load_splits(subset=subset, seed=seed)
    model = build_model(ARCHITECTURE.model_copy(update={"augment": aug}))
    fit(model, splits, BASE.trainer.model_copy(update={"epochs": epochs}), [], aug=aug)
    return mirror_averaged(model) if aug.averages_mirror else model, splits


def score(model, x_test: np.ndarray, y_test: np.ndarray, x_photos: np.ndarray,
          accepted: list[set[int]]) -> tuple[float, float]:
    """(Fashion-MNIST test accuracy, real-photo accuracy)."""
    test = float(np.mean(probabilities(model, x_test[..., 0]).argmax(1) == y_test))
    photos = float(np.mean([p in ok for p, ok in zip(probabilities(model, x_photos).argmax(1), accepted, strict=False)]))
    return test, photos


def arguments(doc: str, epochs: int, seeds: list[int]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("photos", type=Path, help="folder of garment-type folders (../shared/real-photos)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--subset", type=int, default=None, help="training images (default: all 60k)")
    return parser.parse_args()


def side_by_side(rows: dict[str, list[tuple[float, float]]], first_column: str, args: argparse.Namespace,
                 photos: int) -> None:
    """Markdown: each row's means over seeds, and as ratios of the first row's."""
    base = [statistics.mean(v[i] for v in rows[next(iter(rows))]) for i in (0, 1)]
    print(f"\n{args.epochs} epochs, seeds {' '.join(map(str, args.seeds))}, {photos} labelled photos\n")
    print(f"| {first_column} | Fashion-MNIST test | real-photo accuracy | test ratio | photo ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, v in rows.items():
        test, photo = (statistics.mean(r[i] for r in v) for i in (0, 1))
        print(f"| {name} | {test:.2%} | {photo:.1%} | {test / base[0]:.3f} | {photo / base[1]:.2f} |")


def main() -> None:
    args = arguments(__doc__, epochs=20, seeds=[2, 3, 4])
    x_photos, accepted = labelled_photos(args.photos)
    rows: dict[str, list[tuple[float, float]]] = {}
    for name, aug in SETTINGS.items():
        for seed in args.seeds:
            model, splits = train_one(aug, seed, args.epochs, args.subset)
            test, photos = score(model, splits.x_test, splits.y_test, x_photos, accepted)
            rows.setdefault(name, []).append((test, photos))
            print(f"{name}, seed {seed}: Fashion-MNIST test {test:.2%}, real photos {photos:.1%}", flush=True)
    side_by_side(rows, "augmentation", args, len(accepted))


if __name__ == "__main__":
    main()
