"""The test images the model gets wrong while most sure of itself: often label noise or
genuinely ambiguous clothes (shirt vs T-shirt), which no amount of tuning fixes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fmnist.reports.files import write_csv
from fmnist.reports.figures import figure, save

COLUMNS = 6
PAD, CAPTION = 3, 9  # pixels around each image, and below it for its two caption lines
INCHES_PER_PIXEL = 1.7 / (28 + PAD)


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to `count` misclassified images, highest predicted probability first."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y_true)
    confidence = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, 28, 28, 1) -> one grid image with a blank caption band under each tile:
    one imshow instead of N axes keeps the figure cheap to draw."""
    rows = max(math.ceil(len(images) / columns), 1)
    cell_h, cell_w = 28 + PAD + CAPTION, 28 + PAD
    grid = np.zeros((rows * cell_h + PAD, columns * cell_w + PAD), dtype=np.float32)
    for i, img in enumerate(images[..., 0]):
        r, c = divmod(i, columns)
        grid[PAD + r * cell_h: PAD + r * cell_h + 28, PAD + c * cell_w: PAD + c * cell_w + 28] = img
    return grid


def plot_mistakes(images: np.ndarray, rows: list[list], path: Path) -> Path:
    """Each tile is captioned "predicted (confidence)" over "true: class"."""
    columns = min(COLUMNS, max(len(rows), 1))
    grid = mosaic(images, columns)
    title = 0.35
    fig = figure(grid.shape[1] * INCHES_PER_PIXEL, grid.shape[0] * INCHES_PER_PIXEL + title)
    ax = fig.add_axes((0, 0, 1, 1 - title / fig.get_figheight()))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for i, row in enumerate(rows):
        r, c = divmod(i, columns)
        x, y = PAD + c * (28 + PAD) + 14, PAD + r * (28 + PAD + CAPTION) + 28
        ax.text(x, y, f"{row[5]} ({row[6]:.0%})\ntrue: {row[3]}", ha="center", va="top", fontsize=8,
                color="firebrick", linespacing=1.1)
    ax.axis("off")
    fig.suptitle(f"{len(rows)} most confident test-set mistakes: predicted (confidence) / true",
                 fontsize=10, y=1 - 0.05 / fig.get_figheight(), va="top")
    return save(fig, path)


def write_mistakes(images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, names: tuple[str, ...],
                   count: int, out: Path) -> list[Path]:
    """mistakes.png and mistakes.csv (rank, test_index, true/predicted class and name, confidence)."""
    picked = confident_mistakes(y_true, probs, count)
    pred = probs.argmax(1)
    rows = [[rank + 1, int(i), int(y_true[i]), names[y_true[i]], int(pred[i]), names[pred[i]], float(probs[i, pred[i]])]
            for rank, i in enumerate(picked)]
    header = ["rank", "test_index", "true", "true_name", "predicted", "predicted_name", "confidence"]
    return [plot_mistakes(images[picked], rows, out / "mistakes.png"), write_csv(out / "mistakes.csv", header, rows)]
