"""How busy does a sweep keep a GPU? Figures for docs/scaling.md.

    KERAS_BACKEND=jax python bench/gpu.py [--epochs 4] [--workers 4] [--trials 16] [--peak-tflops 67] [--full]

1. Seconds per epoch and images per second for `seed_final` and for a typical default-space
   trial (two blocks of two 3x3 convs with batch norm, 64 then 64 filters, dense 256, batch 128,
   flips and shifts), the first epoch (compilation) left out, with the GPU's utilisation sampled
   by `nvidia-smi` every 0.2 s while they train, and the share of the card's peak that the
   training arithmetic (3x the forward pass's multiply-adds) reaches.
2. Trials per hour of the default space with 1 and with N workers on the GPU
   (`python -m fmnist.sweep cluster.workers=N`, time limits off, no promotion or retrain), each in
   a sqlite store of its own: trials / (last trial's end - first trial's start), and the
   utilisation meanwhile.
3. With --full: the default sweep as a GPU user runs it (all trials, promotion and the retrain,
   time limits off): wall minutes and the registered test accuracy.

Runs on a CPU too (utilisation then reads n/a), e.g. `--subset 2000 --trials 2` to try it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import keras
import numpy as np
from mlflow.tracking import MlflowClient

from fmnist.config.loading import checked
from fmnist.training.data import load_splits
from fmnist.training.fitting import fit, seed_everything
from fmnist.training.model import build_model

TRIAL = ["model.conv_blocks=[{filters:64,convs:2,kernel:3,stride:1,padding:same,pool:true,batch_norm:true,dropout:0.2},"
         "{filters:64,convs:2,kernel:3,stride:1,padding:same,pool:true,batch_norm:true,dropout:0.2}]",
         "model.dense=[{units:256,dropout:0.3}]", "model.augment.flip=true", "model.augment.shift=0.05",
         "trainer.batch_size=128"]
NO_LIMITS = ["sweep.search_minutes=0", "sweep.trial_minutes=0", "selection.retrain_minutes=0",
             "selection.promote_minutes=0", "trainer.steps_per_execution=8"]   # the README's GPU recipe


class Utilisation:
    """`nvidia-smi`'s GPU utilisation (%), sampled every 0.2 s in a thread while in the `with`."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()

    def __enter__(self) -> "Utilisation":
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.TimeoutExpired):
                return
            self.samples.append(statistics.mean(float(v) for v in out.split()))

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return f"{statistics.mean(self.samples):.0f}% mean, {statistics.median(self.samples):.0f}% median"


def training_flops(model: keras.Model) -> float:
    """Floating-point operations to train on one image: 3x the forward pass's 2 x multiply-adds
    of its convolutions and dense layers (the rest is small next to them)."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            total += 2 * h * w * np.prod(layer.kernel_size) * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return 3 * total


class EpochTimes(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds = [*getattr(self, "seconds", []), time.perf_counter() - self.start]


def epoch_speed(name: str, overrides: list[str], args, peak: float) -> str:
    cfg = checked("train", [*overrides, f"trainer.epochs={args.epochs}", "trainer.verbose=0",
                               "trainer.steps_per_execution=8"])
    splits = load_splits(subset=args.subset, seed=0)
    seed_everything(0)
    model, timer = build_model(cfg.model), EpochTimes()
    with Utilisation() as gpu:
        fit(model, splits, cfg.trainer, [timer], aug=cfg.model.augment)
    seconds = statistics.median(timer.seconds[1:] or timer.seconds)
    images = len(splits.y_train) / seconds
    share = images * training_flops(model) / (peak * 1e12)
    return f"| {name} | {cfg.trainer.batch_size} | {seconds:.2f} | {images:,.0f} | {gpu.summary()} | {share:.1%} |"


def sweep(args, workers: int, overrides: list[str], root: Path) -> tuple[MlflowClient, float, Utilisation]:
    """One default sweep in a store of its own under `root`; its client, wall seconds, utilisation."""
    folder = Path(tempfile.mkdtemp(dir=root))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    start = time.perf_counter()
    with Utilisation() as gpu:
        subprocess.run([sys.executable, "-m", "fmnist.sweep", f"cluster.workers={workers}", *NO_LIMITS, *overrides,
                        *([f"data.subset={args.subset}"] if args.subset else [])],
                       cwd=folder, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, check=True,
                       stdout=open(folder / "sweep.log", "w"), stderr=subprocess.STDOUT)
    return MlflowClient(uri), time.perf_counter() - start, gpu


def trials_per_hour(args, workers: int, root: Path) -> str:
    client, wall, gpu = sweep(args, workers, [f"tuner.max_trials={args.trials}", "selection.promote=1",
                                              "selection.retrain_epochs=0", "report.enabled=false"], root)
    runs = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id],
                              "attributes.status = 'FINISHED'", max_results=1000)
    trials = [r for r in runs if r.info.run_name.startswith("trial-")]
    span = (max(r.info.end_time for r in trials) - min(r.info.start_time for r in trials)) / 1000
    return f"| {workers} | {len(trials)} | {span / 60:.1f} | {len(trials) / span * 3600:.0f} | {gpu.summary()} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="per speed measurement; the first is left out")
    parser.add_argument("--workers", type=int, default=4, help="N for the trials-per-hour comparison with 1")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--subset", type=int, default=None, help="training images (default: all)")
    parser.add_argument("--peak-tflops", type=float, default=67.0, help="the card's FP32 peak (H200: 67)")
    parser.add_argument("--full", action="store_true", help="also the default sweep, time limits off")
    args = parser.parse_args()
    print(f"backend {keras.backend.backend()}, devices {keras.distribution.list_devices()}\n")
    print("| model | batch | s/epoch | images/s | GPU utilisation | share of peak |\n| --- | --- | --- | --- | --- | --- |")
    print(epoch_speed("seed_final", ["experiment=seed_final"], args, args.peak_tflops), flush=True)
    print(epoch_speed("default-space trial", TRIAL, args, args.peak_tflops), flush=True)
    root = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    print("\n| workers | trials | minutes | trials/hour | GPU utilisation |\n| --- | --- | --- | --- | --- |")
    for workers in (1, args.workers):
        print(trials_per_hour(args, workers, root), flush=True)
    if args.full:
        client, wall, gpu = sweep(args, 0 if args.workers == 1 else args.workers, [], root)
        best = client.get_model_version_by_alias("fmnist-cnn", "best")
        print(f"\ndefault sweep, time limits off, {args.workers} workers: {wall / 60:.1f} min wall, "
              f"test accuracy {float(best.tags['test_accuracy']):.2%}, GPU {gpu.summary()}")


if __name__ == "__main__":
    main()
