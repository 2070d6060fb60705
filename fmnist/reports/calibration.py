"""The reliability diagram: does a confidence of 0.9 mean right nine times in ten?

Rows are binned by their top probability; each bar is a bin's accuracy, the diagonal is
where a calibrated model's bars end, and the red part of a bar is its gap to the bin's mean
confidence. Before and after temperature scaling sit side by side on the same photos, so the
effect of the fitted T (fmnist/training/calibration.py) is one look.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.reports.figures import figure, margins, save
from fmnist.reports.files import write_csv
from fmnist.training.calibration import expected_calibration_error, reliability

BINS = 15


def draw_panel(ax, probs: np.ndarray, labels: np.ndarray, title: str) -> None:  # noqa: ANN001 - a Matplotlib Axes
    """One model's bars: accuracy per bin, and the gap to its mean confidence in red."""
    conf, acc, counts = reliability(probs, labels, BINS)
    full, width = counts > 0, 1.0 / BINS
    centres = (np.arange(BINS) + 0.5) * width
    ax.bar(centres[full], acc[full], width, color="tab:blue", edgecolor="white", label="accuracy")
    ax.bar(centres[full], conf[full] - acc[full], width, bottom=acc[full], color="tab:red", alpha=0.35,
           label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    for x, a, n in zip(centres[full], acc[full], counts[full], strict=True):
        ax.text(x, min(a, 0.93) + 0.02, str(n), ha="center", fontsize=7)  # rows per bin: how much each bar weighs
    ece = expected_calibration_error(probs, labels, BINS)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy",
           title=f"{title}: ECE {ece:.3f}, {len(labels)} photos")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def plot_reliability(before: np.ndarray, after: np.ndarray, labels: np.ndarray, temperature: float,
                     path: Path) -> Path:
    fig = figure(11, 5)
    left, right = fig.subplots(1, 2)
    draw_panel(left, before, labels, "as trained")
    draw_panel(right, after, labels, f"temperature {temperature:.3g}")
    margins(fig, left=0.06, right=0.98, bottom=0.11, top=0.92, wspace=0.18)
    return save(fig, path)


def reliability_rows(before: np.ndarray, after: np.ndarray, labels: np.ndarray) -> list[list[float]]:
    """One row per bin: its bounds, then mean confidence, accuracy and count before and after."""
    b, a = reliability(before, labels, BINS), reliability(after, labels, BINS)
    return [[i / BINS, (i + 1) / BINS, float(b[0][i]), float(b[1][i]), int(b[2][i]),
             float(a[0][i]), float(a[1][i]), int(a[2][i])] for i in range(BINS)]


def write_reliability(before: np.ndarray, after: np.ndarray, labels: np.ndarray, temperature: float,
                      out: Path) -> list[Path]:
    """reliability.png and reliability.csv (per bin, before and after temperature scaling)."""
    header = ["low", "high", "confidence_before", "accuracy_before", "count_before",
              "confidence_after", "accuracy_after", "count_after"]
    return [plot_reliability(before, after, labels, temperature, out / "reliability.png"),
            write_csv(out / "reliability.csv", header, reliability_rows(before, after, labels))]
