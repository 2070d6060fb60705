"""What does fmnist.train's code path cost over a bare `model.fit`?

    python bench/overhead.py [--subset 20000] [--epochs 2] [--rounds 3]

Trains the same model (seed_final's architecture, same seed) on the same data, alternating
fmnist.train's `fit` (with per-epoch MLflow logging into a throwaway store) and a bare
`model.fit`, so machine noise hits both alike. After one warm-up of each, only the
training is timed: the store's creation and the evaluation afterwards are per run. Prints seconds per epoch for each and the
ratio of medians (target: at most 1.03).
"""

from __future__ import annotations

import tempfile
import time

import keras
import mlflow
from sidebyside import arguments, compare  # bench/, beside this script

from fmnist.config.loading import checked
from fmnist.training.data import load_splits
from fmnist.training.fitting import fit, seed_everything
from fmnist.training.model import build_model
from fmnist.training.tracking import EpochLogger

SEED_FINAL = checked("train", ["experiment=seed_final"])


def timed(train_once) -> float:
    seed_everything(0)
    model = build_model(SEED_FINAL.model)
    with mlflow.start_run() as run:  # opening a run is a one-off per run, not per epoch
        start = time.perf_counter()
        train_once(model, run.info.run_id)
        return time.perf_counter() - start


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    splits = load_splits(subset=args.subset, seed=0)
    trainer = SEED_FINAL.trainer.model_copy(update={"epochs": args.epochs, "verbose": 0})
    mlflow.set_tracking_uri(f"sqlite:///{tempfile.mkdtemp()}/bench.db")

    def ours(model: keras.Model, run_id: str) -> None:
        fit(model, splits, trainer, [EpochLogger(run_id)])

    def bare(model: keras.Model, run_id: str) -> None:
        model.fit(splits.x_train, splits.y_train, validation_data=(splits.x_val, splits.y_val),
                  epochs=args.epochs, batch_size=trainer.batch_size, verbose=0)

    compare({"fmnist.train": lambda: timed(ours), "bare model.fit": lambda: timed(bare)}, args,
            len(splits.y_train), "path", 1.03)


if __name__ == "__main__":
    main()
