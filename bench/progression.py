"""Reproduce the original project's progression: train each seed experiment, print a table.

    python bench/progression.py [--epochs-final 15] [--only seed_dense,seed_cnn32]

Each model is trained by `python -m fmnist.train experiment=NAME` into the MLflow
experiment `progression`; the table is read back from MLflow, so every figure in it is a
logged run anyone can open in `mlflow ui`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import mlflow

ORIGINAL = {
    "seed_dense": "88%", "seed_cnn32": "91%", "seed_cnn64": "92%",
    "seed_cnn_dropout": "about 93%", "seed_final": "93.40% (100 epochs)",
}


def run(name: str, extra: list[str]) -> str:
    cmd = [sys.executable, "-m", "fmnist.train", f"experiment={name}", "mlflow.experiment=progression",
           "trainer.verbose=0", *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out.strip().splitlines()[-1], file=sys.stderr)
    return out.split("run ", 1)[1].split(":", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-final", type=int, default=15, help="epochs for seed_final (original: 100)")
    parser.add_argument("--only", default=",".join(ORIGINAL), help="comma-separated experiments")
    args = parser.parse_args()
    print("| experiment | original test accuracy | our test accuracy | val accuracy | gap | epochs | s/epoch | command |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.only.split(","):
        extra = [f"trainer.epochs={args.epochs_final}"] if name == "seed_final" else []
        m = mlflow.get_run(run(name, extra)).data.metrics
        cmd = " ".join(["python -m fmnist.train", f"experiment={name}", *extra])
        print(f"| `{name}` | {ORIGINAL[name]} | {m['test_accuracy']:.2%} | {m['val_accuracy']:.2%} | "
              f"{m['overfit_gap']:+.3f} | {m['epochs_run']:.0f} | {m['train_seconds'] / m['epochs_run']:.1f} | `{cmd}` |",
              flush=True)


if __name__ == "__main__":
    main()
