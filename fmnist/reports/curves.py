"""Learning curves: is the model still learning, and is it overfitting?

Training and validation accuracy share one panel with the space between them shaded,
so the overfitting gap is visible at a glance; loss gets the panel beside it. Keras' training
accuracy is a running mean over the epoch (dropout on, weights still improving), so early
epochs can show a negative gap; the run's overfit_gap metric re-measures both at the end.
"""

from __future__ import annotations

import math
from pathlib import Path

from fmnist.reports.figures import figure, margins, save
from fmnist.reports.files import write_csv

COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


def curve_rows(history: dict[str, list[float]]) -> list[list[float]]:
    """One row per epoch: epoch, the four Keras metrics (NaN where missing), gap."""
    epochs = max((len(history.get(k, [])) for k in COLUMNS), default=0)
    value = lambda k, i: float(history[k][i]) if i < len(history.get(k, [])) else math.nan  # noqa: E731
    return [[i + 1, *(value(k, i) for k in COLUMNS), value("accuracy", i) - value("val_accuracy", i)]
            for i in range(epochs)]


def plot_curves(rows: list[list[float]], path: Path) -> Path:
    epochs = [r[0] for r in rows]
    col = {k: [r[1 + i] for r in rows] for i, k in enumerate(COLUMNS)}
    fig = figure(10, 4)
    acc, loss = fig.subplots(1, 2)
    acc.plot(epochs, col["accuracy"], "o-", label="train (running mean over the epoch)")
    acc.plot(epochs, col["val_accuracy"], "o-", label="validation")
    acc.fill_between(epochs, col["accuracy"], col["val_accuracy"], color="tab:red", alpha=0.15,
                     label="gap (train - val)")
    gap = rows[-1][-1] if rows else math.nan
    acc.set(title=f"Accuracy (final gap {gap:+.3f})", xlabel="epoch", ylabel="accuracy")
    loss.plot(epochs, col["loss"], "o-", label="train")
    loss.plot(epochs, col["val_loss"], "o-", label="validation")
    loss.set(title="Loss", xlabel="epoch", ylabel="cross-entropy")
    for ax in (acc, loss):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) <= 20:
            ax.set_xticks(epochs)
    margins(fig, left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.2)
    return save(fig, path)


def write_curves(history: dict[str, list[float]], out: Path) -> list[Path]:
    """curves.png and curves.csv (epoch, loss, accuracy, val_loss, val_accuracy, gap)."""
    rows = curve_rows(history)
    return [plot_curves(rows, out / "curves.png"),
            write_csv(out / "curves.csv", ["epoch", *COLUMNS, "gap"], rows)]
