"""A sweep's trials in three pictures, on the parent run: did the search improve, which
settings matter, and does the best validation accuracy come with overfitting?

Input is one dict per trial in start order: trial_id, status, val_accuracy, train_accuracy,
test_accuracy, overfit_gap, seconds (NaN where a trial failed) and hp.<name> per
hyperparameter. MLflow returns params as strings, so "64", "0.001" and "True" are read back
as numbers and booleans.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from matplotlib.axes import Axes

from fmnist.reports.figures import figure, save
from fmnist.reports.files import write_csv

ARTIFACT_PATH = "sweep_reports"
PANEL_COLUMNS = 3


def typed(value: Any) -> Any:
    """A param value as the tuner set it: bool, int, float or str."""
    if not isinstance(value, str):
        return value
    if value in ("True", "False", "true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def score(trial: dict[str, Any], key: str = "val_accuracy") -> float:
    """A trial's metric as a float; NaN where it failed or never logged one."""
    value = typed(trial.get(key, math.nan))
    return float(value) if isinstance(value, (int, float)) else math.nan


def finished(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials with a validation accuracy to plot."""
    return [t for t in trials if not math.isnan(score(t))]


def best_so_far(trials: list[dict[str, Any]]) -> np.ndarray:
    """Running maximum of validation accuracy in start order; failed trials carry it on."""
    val = np.array([score(t) for t in trials], dtype=float)
    return np.fmax.accumulate(val) if len(val) else val


def hyperparameters(trials: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for t in trials for k in t if k.startswith("hp.")))


def is_numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_progress(trials: list[dict[str, Any]], path: Path) -> Path:
    """Validation accuracy per trial in start order, the best so far as a step line,
    failed trials as red crosses on the bottom edge."""
    fig = figure(9, 4.5)
    ax = fig.subplots()
    order = np.arange(1, len(trials) + 1)
    val = np.array([score(t) for t in trials], dtype=float)
    best = best_so_far(trials)
    top = best[-1] if len(best) else math.nan
    ax.plot(order, val, "o", label="trial")
    ax.step(order, best, where="post", color="tab:green", label="best so far")
    failed = order[np.isnan(val)]
    if len(failed):
        ax.plot(failed, np.full(len(failed), np.nanmin(val) if np.isfinite(val).any() else 0.0), "x",
                color="tab:red", markersize=10, label="failed")
    ax.set_xticks(order, [str(t["trial_id"]) for t in trials], rotation=90 if len(trials) > 20 else 0)
    ax.set(xlabel="trial (start order)", ylabel="validation accuracy",
           title=f"{len(trials)} trials, best validation accuracy {top:.4f}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def panel(ax: Axes, name: str, values: list[Any], val: list[float]) -> None:
    """Numbers as a scatter (log scale over a wide positive range); categories and booleans
    as a box per value with the trials jittered over it. The best trial is a star."""
    best = int(np.argmax(val))
    if is_numeric(values):
        ax.scatter(values, val, alpha=0.8)
        ax.scatter([values[best]], [val[best]], marker="*", s=200, color="tab:orange", zorder=3)
        if min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log")
        else:
            ax.locator_params(axis="x", nbins=5)
    else:
        labels = sorted({str(v) for v in values})
        pos = np.array([labels.index(str(v)) for v in values], dtype=float)
        groups = [[a for a, p in zip(val, pos, strict=False) if p == i] for i in range(len(labels))]
        ax.boxplot(groups, positions=range(len(labels)), tick_labels=labels, widths=0.5)
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(pos))
        ax.scatter(pos + jitter, val, alpha=0.8)
        ax.scatter([pos[best]], [val[best]], marker="*", s=200, color="tab:orange", zorder=3)
    ax.set(xlabel=name, ylabel="validation accuracy")
    ax.grid(alpha=0.3)


def set_by(values: list[Any]) -> str:
    """" (2 of 5)" when only some trials set a hyperparameter, else nothing."""
    count = sum(v is not None for v in values)
    return f" ({count} of {len(values)})" if count < len(values) else ""


def plot_hyperparameters(trials: list[dict[str, Any]], path: Path) -> Path:
    """One panel per hyperparameter that varied; the others are listed in the title, with
    how many trials set them where a conditional one (filters_3) was set by only some."""
    done = finished(trials)
    names = hyperparameters(done)
    columns = {n: [typed(t.get(n)) for t in done] for n in names}
    distinct = {n: {str(v) for v in columns[n] if v is not None} for n in names}  # conditional ones may lack it
    varied = [n for n in names if len(distinct[n]) > 1]
    fixed = ", ".join(f"{n[3:]}={next(iter(distinct[n]))}{set_by(columns[n])}" for n in names if len(distinct[n]) == 1)
    rows = max(math.ceil(len(varied) / PANEL_COLUMNS), 1)
    fig = figure(4.2 * min(max(len(varied), 1), PANEL_COLUMNS), 3.4 * rows + 0.5)
    axes = fig.subplots(rows, min(max(len(varied), 1), PANEL_COLUMNS), squeeze=False).ravel()
    val = [score(t) for t in done]
    for ax, name in zip(axes, varied, strict=False):  # a grid may have more axes than panels
        present = [(v, a) for v, a in zip(columns[name], val, strict=False) if v is not None]
        panel(ax, name[3:], [v for v, _ in present], [a for _, a in present])
    for ax in axes[len(varied):]:
        ax.axis("off")
    fig.suptitle("Validation accuracy against each hyperparameter (star: the best trial that set it)"
                 + (f"\nfixed: {fixed}" if fixed else ""), fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def plot_gap(trials: list[dict[str, Any]], path: Path) -> Path:
    """Overfitting gap (train - validation accuracy) against validation accuracy: the
    good corner is bottom right."""
    done = finished(trials)
    fig = figure(7, 5)
    ax = fig.subplots()
    val = [score(t) for t in done]
    gap = [score(t, "overfit_gap") for t in done]
    ax.scatter(val, gap, alpha=0.8)
    for t, x, y in zip(done, val, gap, strict=False):
        ax.annotate(str(t["trial_id"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(xlabel="validation accuracy", ylabel="overfit gap (train - validation accuracy)",
           title="Gap against validation accuracy (best: bottom right)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def write_sweep_reports(trials: list[dict[str, Any]], out: Path) -> list[Path]:
    """sweep_progress.png, sweep_hyperparameters.png, sweep_gap.png and trials.csv (the
    trials as given, in start order, plus best_so_far)."""
    columns = list(dict.fromkeys(k for t in trials for k in t))
    rows = [[t.get(c, "") for c in columns] + [float(b)] for t, b in zip(trials, best_so_far(trials), strict=False)]
    return [plot_progress(trials, out / "sweep_progress.png"),
            plot_hyperparameters(trials, out / "sweep_hyperparameters.png"),
            plot_gap(trials, out / "sweep_gap.png"),
            write_csv(out / "trials.csv", [*columns, "best_so_far"], rows)]


def log_sweep_reports(trials: list[dict[str, Any]], artifact_path: str = ARTIFACT_PATH) -> None:
    """Draw the sweep's reports and log them under `artifact_path` of the active run."""
    with tempfile.TemporaryDirectory(prefix="fmnist-sweep-reports-") as tmp:
        write_sweep_reports(trials, Path(tmp))
        mlflow.log_artifacts(tmp, artifact_path)
