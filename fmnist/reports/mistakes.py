"""The images the model gets wrong while most sure of itself: often label noise or
genuinely ambiguous clothes (shirt vs T-shirt), which no amount of tuning fixes. Gray
28x28 test images, or a fine-tuned model's photos as colour thumbnails."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fmnist.reports.figures import figure, save
from fmnist.reports.files import write_csv

COLUMNS = 6
PAD, CAPTION = 3, 9  # pixels around each 28-pixel image, and below it for its two caption lines
TILE_INCHES = 1.7


def confident_mistakes(y_true: np.ndarray, probs: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to `count` misclassified images, highest predicted probability first."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y_true)
    confidence = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def caption_band(side: int) -> int:
    return round(CAPTION * side / 28)


def mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, S, S, 1) gray or (N, S, S, 3) colour -> one grid image with a blank caption band
    under each tile: one imshow instead of N axes keeps the figure cheap to draw. A colour
    grid is white between tiles, a gray one black (drawn inverted)."""
    rows, side, channels = max(math.ceil(len(images) / columns), 1), images.shape[1], images.shape[3]
    cell_h, cell_w = side + PAD + caption_band(side), side + PAD
    grid = np.full((rows * cell_h + PAD, columns * cell_w + PAD, channels), float(channels == 3), np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[PAD + r * cell_h: PAD + r * cell_h + side, PAD + c * cell_w: PAD + c * cell_w + side] = img
    return grid[..., 0] if channels == 1 else grid


def plot_mistakes(images: np.ndarray, rows: list[list], path: Path, what: str = "test-set") -> Path:
    """Each tile is captioned "predicted (confidence)" over "true: class"."""
    columns, side = min(COLUMNS, max(len(rows), 1)), images.shape[1]
    grid = mosaic(images, columns)
    title, inches_per_pixel = 0.35, TILE_INCHES / (side + PAD)
    fig = figure(grid.shape[1] * inches_per_pixel, grid.shape[0] * inches_per_pixel + title)
    ax = fig.add_axes((0, 0, 1, 1 - title / fig.get_figheight()))
    ax.imshow(grid, cmap="gray_r" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    for i, row in enumerate(rows):
        r, c = divmod(i, columns)
        x, y = PAD + c * (side + PAD) + side / 2, PAD + r * (side + PAD + caption_band(side)) + side
        ax.text(x, y, f"{row[5]} ({row[6]:.0%})\ntrue: {row[3]}", ha="center", va="top", fontsize=8,
                color="firebrick", linespacing=1.1)
    ax.axis("off")
    fig.suptitle(f"{len(rows)} most confident {what} mistakes: predicted (confidence) / true",
                 fontsize=10, y=1 - 0.05 / fig.get_figheight(), va="top")
    return save(fig, path)


def write_mistakes(images: np.ndarray, y_true: np.ndarray, probs: np.ndarray, names: tuple[str, ...],
                   count: int, out: Path, what: str = "test-set") -> list[Path]:
    """mistakes.png and mistakes.csv (rank, test_index, true/predicted class and name, confidence).
    `images`: all of them, or a callable giving the images at the picked indices (photos,
    read only for the mistakes shown)."""
    picked = confident_mistakes(y_true, probs, count)
    pred = probs.argmax(1)
    rows = [[rank + 1, int(i), int(y_true[i]), names[y_true[i]], int(pred[i]), names[pred[i]], float(probs[i, pred[i]])]
            for rank, i in enumerate(picked)]
    header = ["rank", "test_index", "true", "true_name", "predicted", "predicted_name", "confidence"]
    shown = images(picked) if callable(images) else images[picked]
    return [plot_mistakes(shown, rows, out / "mistakes.png", what), write_csv(out / "mistakes.csv", header, rows)]
