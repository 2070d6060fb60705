"""Is training with flips and shifts inside the compiled step (fmnist.training.fitting.fit) as
fast on this CPU as the path it replaced: batches flipped and shifted in NumPy, one Python call
per batch (a keras PyDataset, as at commit 297f18f)?

    python bench/input_path.py [--subset 20000] [--epochs 2] [--rounds 3]   (KERAS_BACKEND picks the backend)

Trains the default space's typical trial (two blocks of 32 then 64 filters, dense 128, batch
128, flips and 1-pixel shifts) from the same seed, alternating the two paths so machine noise
hits both alike; after one warm-up of each, only `fit` is timed. Prints seconds per epoch and
the ratio of medians (issue 17: at most 1.0, the new path no slower).
"""

from __future__ import annotations

import time
from typing import Callable

import keras
import numpy as np
from sidebyside import arguments, compare  # bench/, beside this script

from fmnist.config.loading import checked
from fmnist.training.augment import WarpedBatches
from fmnist.training.data import load_splits
from fmnist.training.fitting import fit, seed_everything
from fmnist.training.model import build_model


class NumpyBatches(WarpedBatches):
    """The replaced path: each batch flipped and shifted by up to a pixel in NumPy, handed to
    Keras one by one."""

    def transform(self, images: np.ndarray) -> np.ndarray:
        mirrored = self.rng.random(len(images)) < 0.5
        images[mirrored] = images[mirrored, :, ::-1]
        n, h, w = images.shape[:3]
        padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
        dy, dx = self.rng.integers(0, 3, (2, n))
        rows = dy[:, None, None] + np.arange(h)[None, :, None]
        cols = dx[:, None, None] + np.arange(w)[None, None, :]
        return padded[np.arange(n)[:, None, None], rows, cols]


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    cfg = checked("train", ["model.augment.flip=true", "model.augment.shift=0.05", "trainer.batch_size=128",
                               f"trainer.epochs={args.epochs}", "trainer.verbose=0"])
    splits = load_splits(subset=args.subset, seed=0)

    def new() -> None:
        fit(build_model(cfg.model), splits, cfg.trainer, [], aug=cfg.model.augment)

    def old() -> None:
        model = build_model(cfg.model)  # compiled one step per call, as before steps_per_execution
        batches = NumpyBatches(splits.x_train, splits.y_train, cfg.trainer.batch_size, cfg.model.augment, seed=0)
        model.fit(batches, validation_data=(splits.x_val, splits.y_val), epochs=args.epochs, verbose=0)

    def timed(train: Callable[[], None]) -> float:
        seed_everything(0)
        start = time.perf_counter()
        train()
        return time.perf_counter() - start

    compare({f"in the step, {cfg.trainer.steps_per_execution} steps per call (now)": lambda: timed(new),
             "NumPy batches, 1 step per call (before)": lambda: timed(old)}, args, len(splits.y_train),
            "input path", 1.0, f", backend {keras.backend.backend()}")


if __name__ == "__main__":
    main()
