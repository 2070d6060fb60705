"""How far does shape alone carry to real photos? Garment tones vs silhouettes, side by side.

    python bench/shape_only.py PHOTOS_DIR [--epochs 10] [--seeds 2] [--subset N]

Trains one architecture (bench/augment_photos.py's, flips and 1-pixel shifts) twice per
seed on the same Fashion-MNIST split: once on the images as they are, once on their
silhouettes (every non-black pixel white, holes filled). Each model is scored on the test
set in its own representation and on the labelled photos: our model inputs for the first,
the photos' garment masks framed the same way for the second. If the photos' outlines
matched the dataset's, the silhouette model would lose on Fashion-MNIST (tones carry
information) but gain on photos (no lighting, wrinkles or prints). It loses on both: the
outlines themselves differ (flat-lays, pairs of shoes from above), which preprocessing
cannot change. docs/predict.md has the figures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from augment_photos import arguments, labelled_photos, score, side_by_side, train_one
from real_photos import ACCEPTED, photo_folders

from fmnist.config.loading import checked
from fmnist.images.preprocess import fill_holes, frame, garment_mask, shrink, to_input
from fmnist.images.reading import read_image
from fmnist.training.data import Splits

AUG = checked("train", []).model.augment.model_copy(update={"flip": True, "shift": 0.05})


def silhouettes(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28, 1) images -> the same shape, 1 on the garment (holes filled), 0 elsewhere."""
    masks = [fill_holes(np.where(im[..., 0] > 0, 255, 0).astype(np.uint8)) for im in x]
    return (np.stack(masks)[..., None] / 255.0).astype(np.float32)


def photo_silhouettes(root: Path) -> np.ndarray:
    """Each labelled photo's garment mask, framed and resized as its model input is."""
    cfg = checked("predict", [f"images={root}"])
    s, out = cfg.photo, []
    for folder, files in photo_folders(root).items():
        for path in files if ACCEPTED[folder] else []:
            mask = garment_mask(shrink(read_image(path, cfg.limits, s.work_size), s.work_size), s)
            out.append(to_input(frame((mask > 0).astype(np.float32), mask, s.margin)) > 0)
    return np.stack(out).astype(np.float32)


def main() -> None:
    args = arguments(__doc__, epochs=10, seeds=[2])
    tones, accepted = labelled_photos(args.photos)
    shapes = photo_silhouettes(args.photos)
    rows: dict[str, list[tuple[float, float]]] = {"garment tones": [], "silhouettes": []}
    for seed in args.seeds:
        model, splits = train_one(AUG, seed, args.epochs, args.subset)
        rows["garment tones"].append(score(model, splits.x_test, splits.y_test, tones, accepted))
        outlined = Splits(*(silhouettes(v) if k.startswith("x_") else v
                            for k, v in dataclasses.asdict(splits).items()))
        model, _ = train_one(AUG, seed, args.epochs, args.subset, outlined)
        rows["silhouettes"].append(score(model, outlined.x_test, outlined.y_test, shapes, accepted))
        print(f"seed {seed}: " + "; ".join(f"{k} test {v[-1][0]:.2%}, photos {v[-1][1]:.1%}" for k, v in rows.items()),
              flush=True)
    side_by_side(rows, "model input", args, len(accepted))


if __name__ == "__main__":
    main()
