"""What the model confuses: a row-normalised confusion matrix and per-class scores.

Rows are the true class and are normalised to sum to 1, so the diagonal reads as "share of
this class predicted right" whatever the class sizes; the raw counts go to confusion.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.reports.figures import figure, margins, save
from fmnist.reports.files import write_csv, write_json

SCORES = ("precision", "recall", "accuracy", "support")


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """counts[t, p]: images of true class t predicted as p."""
    return np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(classes, classes)


def per_class(counts: np.ndarray) -> np.ndarray:
    """Columns precision, recall, accuracy, support per class. Accuracy is one-vs-rest,
    (TP + TN) / N; recall is the share of the class's own images predicted right."""
    tp, true, pred, n = np.diag(counts), counts.sum(1), counts.sum(0), counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = tp / pred, tp / true
    accuracy = (n - true - pred + 2 * tp) / n
    return np.stack([precision, recall, accuracy, true], axis=1)


def normalized(counts: np.ndarray) -> np.ndarray:
    """Each true-class row divided by its size (an empty row stays 0)."""
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def score_table(scores: np.ndarray, names: tuple[str, ...]) -> str:
    """The per-class table as one monospace text: drawn as one text instead of 50 table
    cells, it costs a tenth as much."""
    width = max(map(len, names))
    lines = [f"{'':{width}}  {'precision':>9} {'recall':>6} {'accuracy':>8} {'support':>7}"]
    lines += [f"{n:{width}}  {p:9.3f} {r:6.3f} {a:8.3f} {s:7.0f}" for n, (p, r, a, s) in zip(names, scores, strict=False)]
    return "\n".join(lines)


def plot_confusion(counts: np.ndarray, scores: np.ndarray, names: tuple[str, ...], path: Path) -> Path:
    """The matrix on the left, the per-class table on the right."""
    norm = normalized(counts)
    fig = figure(12, 6)
    ax, tab = fig.subplots(1, 2, width_ratios=[5, 3])
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for (t, p), v in np.ndenumerate(norm):
        if v >= 0.01:  # each label is a text to lay out and draw: the blank ones cost as much
            ax.text(p, t, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black")
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, names)
    accuracy = np.trace(counts) / counts.sum()
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion (rows sum to 1), accuracy {accuracy:.4f}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    tab.axis("off")
    tab.text(0, 0.5, score_table(scores, names), family="monospace", fontsize=9, va="center")
    tab.set_title("Per class (accuracy: one-vs-rest)", loc="left")
    margins(fig, left=0.11, right=0.99, bottom=0.2, top=0.93, wspace=0.08)
    return save(fig, path)


def write_confusion(y_true: np.ndarray, y_pred: np.ndarray, names: tuple[str, ...], out: Path) -> list[Path]:
    """confusion.png, confusion.json (counts, normalised rows, accuracy) and per_class.csv."""
    counts = confusion_counts(y_true, y_pred, len(names))
    scores = per_class(counts)
    data = {
        "class_names": list(names), "evaluated": int(counts.sum()),
        "accuracy": float(np.trace(counts) / counts.sum()), "counts": counts.tolist(),
        "normalized": np.round(normalized(counts), 6).tolist(),
    }
    rows = [[name, *map(float, s[:3]), int(s[3])] for name, s in zip(names, scores, strict=False)]
    return [plot_confusion(counts, scores, names, out / "confusion.png"),
            write_json(out / "confusion.json", data),
            write_csv(out / "per_class.csv", ["class", *SCORES], rows)]
