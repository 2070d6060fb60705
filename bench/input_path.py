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

import argparse
import math
import statistics
import time

import keras
import numpy as np

from fmnist import cli
from fmnist.training.data import load_splits
from fmnist.training.fitting import fit, seed_everything
from fmnist.training.model import build_model


class NumpyBatches(keras.utils.PyDataset):
    """The replaced path: each batch flipped and shifted by up to a pixel in NumPy, handed to
    Keras one by one."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        picked = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        images = self.x[picked]
        mirrored = self.rng.random(len(images)) < 0.5
        images[mirrored] = images[mirrored, :, ::-1]
        n, h, w = images.shape[:3]
        padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
        dy, dx = self.rng.integers(0, 3, (2, n))
        rows = dy[:, None, None] + np.arange(h)[None, :, None]
        cols = dx[:, None, None] + np.arange(w)[None, None, :]
        return padded[np.arange(n)[:, None, None], rows, cols], self.y[picked]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cfg = cli.config("train", ["model.augment.flip=true", "model.augment.shift=0.05", "trainer.batch_size=128",
                               f"trainer.epochs={args.epochs}", "trainer.verbose=0"])
    splits = load_splits(subset=args.subset, seed=0)

    def new() -> None:
        fit(build_model(cfg.model), splits, cfg.trainer, [], aug=cfg.model.augment)

    def old() -> None:
        model = build_model(cfg.model)  # compiled one step per call, as before steps_per_execution
        batches = NumpyBatches(splits.x_train, splits.y_train, cfg.trainer.batch_size, seed=0)
        model.fit(batches, validation_data=(splits.x_val, splits.y_val), epochs=args.epochs, verbose=0)

    def timed(train) -> float:
        seed_everything(0)
        start = time.perf_counter()
        train()
        return (time.perf_counter() - start) / args.epochs

    paths = {"NumPy batches, 1 step per call (before)": old,
             f"in the step, {cfg.trainer.steps_per_execution} steps per call (now)": new}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for train in paths.values():
        timed(train)  # warm-up: graph tracing, thread pools
    for _ in range(args.rounds):
        for name, train in paths.items():
            times[name].append(timed(train))
    print(f"{len(splits.y_train)} training images, {args.epochs} epochs x {args.rounds} rounds, alternated, "
          f"backend {keras.backend.backend()}\n")
    print("| input path | s/epoch (median) | s/epoch (each round) |\n| --- | --- | --- |")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {', '.join(f'{t:.2f}' for t in ts)} |")
    before, now = (statistics.median(ts) for ts in times.values())
    print(f"\nratio now / before: {now / before:.3f} (target <= 1.0)")


if __name__ == "__main__":
    main()
