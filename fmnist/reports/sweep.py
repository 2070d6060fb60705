"""A sweep's trials in five pictures, on the parent run: did the search improve, how does
the score move with each setting, which settings matter (fANOVA importance), how do the
settings combine (parallel coordinates), and does the best validation accuracy come with
overfitting?

Input is one dict per trial in start order: trial_id, status, val_accuracy, train_accuracy,
test_accuracy, overfit_gap, seconds (NaN where a trial failed) and hp.<name> per
hyperparameter. MLflow returns params as strings, so "64", "0.001" and "True" are read back
as numbers and booleans; a hyperparameter a trial did not set is absent, None or NaN.

A sweep with a pruner (successive halving) adds, where it has them: status "PRUNED" (stopped
at a rung, with the validation accuracy it had there), "SKIPPED" (never trained) or "FAILED";
rung (the highest rung the trial reached), epochs (how long it trained) and first_val (its
validation accuracy at rung 0). Pruned trials are drawn apart from completed ones (a
triangle per rung, a dashed line); skipped and failed ones are no points.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import mlflow
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from pandas.plotting import parallel_coordinates

from fmnist.reports.figures import figure, save
from fmnist.reports.files import write_csv
from fmnist.reports.importance import Importance, importances

ARTIFACT_PATH = "sweep_reports"
PANEL_COLUMNS = 3
COMPLETED, PRUNED, SKIPPED, FAILED = "completed", "pruned", "skipped", "failed"
COMPLETED_STYLE = {"marker": "o", "color": "tab:blue"}
RUNG_COLORS = ("tab:gray", "tab:olive", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")  # pruned at rung 0, 1, ...
LINE = "__line__"  # parallel_coordinates' class column: one class, so one colour, per trial
UNSET = -0.12  # where a parallel-coordinates line crosses an axis its trial did not set


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


def setting(trial: dict[str, Any], name: str) -> Any:
    """A trial's hyperparameter as a plain bool, int, float or str; None where the trial did
    not set it (absent, None, NaN or empty: a leaderboard row fills a conditional one with NaN)."""
    value = trial.get(name)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value == "" or (not isinstance(value, str) and pd.isna(value)):
        return None
    return typed(value)


def score(trial: dict[str, Any], key: str = "val_accuracy") -> float:
    """A trial's metric as a float; NaN where it failed or never logged one."""
    value = trial.get(key, math.nan)
    value = typed(value.item() if isinstance(value, np.generic) else value)
    return float(value) if isinstance(value, (int, float)) else math.nan


def state(trial: dict[str, Any]) -> str:
    """COMPLETED, PRUNED, SKIPPED or FAILED; a trial without a validation accuracy failed,
    whatever its status says."""
    status = str(trial.get("status", "")).upper()
    if status == "SKIPPED":
        return SKIPPED
    if status in ("FAILED", "INVALID") or math.isnan(score(trial)):
        return FAILED
    return PRUNED if status == "PRUNED" else COMPLETED


def rung(trial: dict[str, Any]) -> int | None:
    """The rung a pruned trial stopped at; None for any other (or a pruned one that lacks it)."""
    k = score(trial, "rung")
    return int(k) if state(trial) == PRUNED and math.isfinite(k) else None


def finished(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials with a validation accuracy to plot: completed and pruned ones."""
    return [t for t in trials if state(t) in (COMPLETED, PRUNED)]


def best_so_far(trials: list[dict[str, Any]]) -> np.ndarray:
    """Running maximum of validation accuracy in start order over completed trials; pruned
    (scored at a lower fidelity), skipped and failed ones carry it on."""
    val = np.array([score(t) if state(t) == COMPLETED else math.nan for t in trials], dtype=float)
    return np.fmax.accumulate(val) if len(val) else val


def hyperparameters(trials: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for t in trials for k in t if k.startswith("hp.")))


def is_numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def kind(trial: dict[str, Any]) -> int | None:
    """How a point is drawn: None for a completed trial, the rung (-1 where unknown) for a pruned one."""
    if state(trial) != PRUNED:
        return None
    k = rung(trial)
    return -1 if k is None else k


def style(k: int | None) -> dict[str, Any]:
    """Marker and colour of a completed trial (k None) or one pruned at rung k."""
    return COMPLETED_STYLE if k is None else {"marker": "v", "color": RUNG_COLORS[max(k, 0) % len(RUNG_COLORS)]}


def pruned_label(trials: list[dict[str, Any]], k: int) -> str:
    """"pruned at rung 1 (3 epochs)": the epochs where the trials pruned there have them."""
    if k < 0:
        return "pruned"
    epochs = [score(t, "epochs") for t in trials if kind(t) == k]
    epochs = [e for e in epochs if math.isfinite(e)]
    return f"pruned at rung {k}" + (f" ({epochs[0]:g} epoch{'s' * (epochs[0] != 1)})" if epochs else "")


def pruned_kinds(trials: list[dict[str, Any]]) -> list[int]:
    return sorted({k for k in map(kind, trials) if k is not None})


def best_index(kinds: list[int | None], val: list[float]) -> int:
    """The best completed point; the best pruned one where none completed."""
    pool = [i for i, k in enumerate(kinds) if k is None] or list(range(len(val)))
    return max(pool, key=lambda i: val[i])


def plot_progress(trials: list[dict[str, Any]], path: Path) -> Path:
    """Validation accuracy per trial in start order, the best completed so far as a step line,
    pruned trials as triangles (one colour per rung), skipped and failed trials as crosses
    on the bottom edge."""
    fig = figure(9, 4.5)
    ax = fig.subplots()
    order = np.arange(1, len(trials) + 1)
    states = [state(t) for t in trials]
    kinds = [kind(t) for t in trials]
    val = np.array([score(t) if s in (COMPLETED, PRUNED) else math.nan for t, s in zip(trials, states, strict=True)])
    best = best_so_far(trials)
    top = best[-1] if len(best) else math.nan
    done = np.array([s == COMPLETED for s in states], dtype=bool)
    ax.plot(order[done], val[done], "o", color=COMPLETED_STYLE["color"], label="completed")
    for k in pruned_kinds(trials):
        at = np.array([s == PRUNED and c == k for s, c in zip(states, kinds, strict=True)], dtype=bool)
        ax.plot(order[at], val[at], linestyle="none", label=pruned_label(trials, k), **style(k))
    ax.step(order, best, where="post", color="tab:green", label="best completed so far")
    floor = np.nanmin(val) if np.isfinite(val).any() else 0.0
    for name, color in ((SKIPPED, "tab:gray"), (FAILED, "tab:red")):
        at = order[[s == name for s in states]]
        if len(at):
            ax.plot(at, np.full(len(at), floor), "x", color=color, markersize=10,
                    label="skipped (not trained)" if name == SKIPPED else "failed")
    ax.set_xticks(order, [str(t["trial_id"]) for t in trials], rotation=90 if len(trials) > 20 else 0)
    ax.set(xlabel="trial (start order)", ylabel="validation accuracy",
           title=f"{len(trials)} trials, best completed validation accuracy {top:.4f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def panel(ax: Axes, name: str, values: list[Any], val: list[float], kinds: list[int | None] | None = None) -> None:
    """Numbers as a scatter (log scale over a wide positive range); categories and booleans
    as a box per value (over completed trials) with the trials jittered over it. Pruned
    trials are triangles, one colour per rung (`kinds`: None for completed, else the rung).
    The best completed trial is a star."""
    kinds = kinds if kinds is not None else [None] * len(values)
    best = best_index(kinds, val)
    if is_numeric(values):
        x = np.array(values, dtype=float)
        if min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log")
        else:
            ax.locator_params(axis="x", nbins=5)
    else:
        labels = sorted({str(v) for v in values})
        pos = np.array([labels.index(str(v)) for v in values], dtype=float)
        groups = [[a for a, p, k in zip(val, pos, kinds, strict=True) if p == i and k is None] for i in range(len(labels))]
        boxed = [i for i, g in enumerate(groups) if g]
        if boxed:
            ax.boxplot([groups[i] for i in boxed], positions=boxed, widths=0.5)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        x = pos + np.random.default_rng(0).uniform(-0.12, 0.12, len(pos))
    y = np.array(val, dtype=float)
    for k in dict.fromkeys(kinds):
        at = np.array([c == k for c in kinds], dtype=bool)
        ax.scatter(x[at], y[at], alpha=0.8, **style(k))
    ax.scatter([x[best]], [y[best]], marker="*", s=200, color="tab:orange", zorder=3)
    ax.set(xlabel=name, ylabel="validation accuracy")
    ax.grid(alpha=0.3)


def set_by(values: list[Any]) -> str:
    """" (2 of 5)" when only some trials set a hyperparameter, else nothing."""
    count = sum(v is not None for v in values)
    return f" ({count} of {len(values)})" if count < len(values) else ""


def legend(fig: Figure, trials: list[dict[str, Any]]) -> None:
    """The figure's key to completed and pruned points, where some trials were pruned."""
    kinds = pruned_kinds(trials)
    if not kinds:
        return
    handles = [Line2D([], [], linestyle="none", label="completed", **COMPLETED_STYLE),
               *(Line2D([], [], linestyle="none", label=pruned_label(trials, k), **style(k)) for k in kinds),
               Line2D([], [], linestyle="none", marker="*", markersize=12, color="tab:orange", label="best completed")]
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=8, frameon=False)


def plot_hyperparameters(trials: list[dict[str, Any]], path: Path) -> Path:
    """One panel per hyperparameter that varied; the others are listed in the title, with
    how many trials set them where a conditional one (filters_3) was set by only some."""
    done = finished(trials)
    names = hyperparameters(done)
    columns = {n: [setting(t, n) for t in done] for n in names}
    distinct = {n: {str(v) for v in columns[n] if v is not None} for n in names}  # conditional ones may lack it
    varied = [n for n in names if len(distinct[n]) > 1]
    fixed = ", ".join(f"{n[3:]}={next(iter(distinct[n]))}{set_by(columns[n])}" for n in names if len(distinct[n]) == 1)
    rows = max(math.ceil(len(varied) / PANEL_COLUMNS), 1)
    fig = figure(4.2 * min(max(len(varied), 1), PANEL_COLUMNS), 3.4 * rows + 0.5)
    axes = fig.subplots(rows, min(max(len(varied), 1), PANEL_COLUMNS), squeeze=False).ravel()
    val = [score(t) for t in done]
    kinds = [kind(t) for t in done]
    for ax, name in zip(axes, varied, strict=False):  # a grid may have more axes than panels
        present = [(v, a, k) for v, a, k in zip(columns[name], val, kinds, strict=True) if v is not None]
        panel(ax, name[3:], [v for v, _, _ in present], [a for _, a, _ in present], [k for _, _, k in present])
    for ax in axes[len(varied):]:
        ax.axis("off")
    fig.suptitle("Validation accuracy against each hyperparameter (star: the best completed trial that set it)"
                 + (f"\nfixed: {fixed}" if fixed else ""), fontsize=10)
    legend(fig, done)
    fig.tight_layout(rect=(0, 0.06 if pruned_kinds(done) else 0, 1, 1))
    return save(fig, path)


def plot_gap(trials: list[dict[str, Any]], path: Path) -> Path:
    """Overfitting gap (train - validation accuracy) against validation accuracy: the
    good corner is bottom right. Only trials that trained to the end have a gap."""
    done = [t for t in finished(trials) if math.isfinite(score(t, "overfit_gap"))]
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


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def message(path: Path, title: str, text: str) -> Path:
    """A picture that says why there is nothing to draw."""
    fig = figure(7, 2.5)
    ax = fig.subplots()
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return save(fig, path)


def importance_target(trials: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, str]:
    """The trials and score to rank settings by, at one fidelity: first_val (every trial of
    a pruned sweep has it, at rung 0) where every completed and pruned trial has it, else
    the validation accuracy of the completed trials."""
    done = finished(trials)
    if done and all(math.isfinite(score(t, "first_val")) for t in done):
        return done, "first_val", "validation accuracy at rung 0"
    completed = [t for t in done if state(t) == COMPLETED]
    pruned = len(done) - len(completed)
    return completed, "val_accuracy", "validation accuracy" + (f", {pruned} pruned trials left out" if pruned else "")


def sweep_importance(trials: list[dict[str, Any]]) -> tuple[Importance, str]:
    """fANOVA importance of each hyperparameter over the trials, and what it explains."""
    used, key, label = importance_target(trials)
    names = hyperparameters(used)
    columns = {n[3:]: [setting(t, n) for t in used] for n in names}
    return importances(columns, [score(t, key) for t in used]), label


def plot_importance(trials: list[dict[str, Any]], path: Path, data: Path) -> list[Path]:
    """Each varied hyperparameter's share of the score's variance (fANOVA) as a bar, largest
    on top; what was left out (fixed, conditional) below. A picture that says why where
    too few trials or hyperparameters leave nothing to split. `data`: the shares as CSV."""
    result, label = sweep_importance(trials)
    title = f"Hyperparameter importance (fANOVA) of {label}, over {plural(result.trials, 'trial')}"
    write_csv(data, ["hyperparameter", "importance", "target", "trials"],
              [[n, float(v), label, result.trials] for n, v in result.shares.items()])
    if not result.shares:
        return [message(path, title, result.reason), data]
    names = list(result.shares)[::-1]
    shares = [result.shares[n] for n in names]
    fig = figure(7, 1.6 + 0.45 * len(names))
    ax = fig.subplots()
    bars = ax.barh(names, shares, color="tab:blue")
    ax.bar_label(bars, [f"{v:.0%}" for v in shares], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max(shares) * 1.15))
    ax.set_xlabel("share of the variance explained")
    left = [f"fixed: {', '.join(result.fixed)}" if result.fixed else "",
            f"set by only some trials: {', '.join(result.conditional)}" if result.conditional else ""]
    left = "; ".join(x for x in left if x)
    ax.set_title(title + (f"\nleft out, {left}" if left else ""), fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return [save(fig, path), data]


def axis(values: list[Any], objective: bool = False) -> tuple[list[float], list[tuple[float, str]]]:
    """A parallel-coordinates axis: each value's height in 0..1 (UNSET where not set) and the
    ticks to label. Numbers on a linear scale, or log over a wide positive range; anything
    else as evenly spaced categories. The `objective` is linear, its ends labelled."""
    present = [v for v in values if v is not None]
    ticks = [(UNSET, "unset")] if len(present) < len(values) else []
    if is_numeric(present):
        log = not objective and min(present) > 0 and max(present) / min(present) >= 10
        f = np.log10 if log else np.asarray
        lo, hi = float(f(min(present))), float(f(max(present)))
        height = lambda v: 0.5 if hi == lo else (float(f(v)) - lo) / (hi - lo)  # noqa: E731
        distinct = sorted(set(present))
        shown = distinct if len(distinct) <= 6 and not objective else [min(present), max(present)]
        ticks += [(height(v), f"{v:.4g}" if objective else f"{v:.3g}") for v in dict.fromkeys(shown)]
    else:
        labels = sorted({str(v) for v in present})
        height = lambda v: 0.5 if len(labels) == 1 else labels.index(str(v)) / (len(labels) - 1)  # noqa: E731
        ticks += [(height(v), v) for v in labels]
    return [UNSET if v is None else height(v) for v in values], ticks


def plot_parallel(trials: list[dict[str, Any]], path: Path) -> Path:
    """One line per trained trial across the hyperparameters that varied and, last, the
    validation accuracy, coloured by it (pandas' parallel_coordinates on our scaled axes).
    Pruned trials are dashed; the best trials are drawn last, on top."""
    done = sorted(finished(trials), key=lambda t: (state(t) == COMPLETED, score(t)))
    names = [n for n in hyperparameters(done) if len({str(setting(t, n)) for t in done}) > 1]
    title = "Parallel coordinates: each trial's settings and validation accuracy"
    if not done or not names:
        return message(path, title, f"{plural(len(done), 'trained trial')}, "
                                    f"{plural(len(names), 'hyperparameter')} that varied: nothing to draw across")
    val = [score(t) for t in done]
    scaled = {n[3:]: axis([setting(t, n) for t in done]) for n in names}
    scaled["validation accuracy"] = axis(val, objective=True)
    frame = pd.DataFrame({name: heights for name, (heights, _) in scaled.items()})
    frame[LINE] = [f"{i}" for i in range(len(done))]  # one class per line: its own colour
    cmap, norm = matplotlib.colormaps["viridis"], Normalize(min(val), max(val) if max(val) > min(val) else min(val) + 1e-9)
    fig = figure(max(7.0, 1.7 * len(scaled) + 2), 5)
    ax = fig.subplots()
    parallel_coordinates(frame, LINE, ax=ax, color=[to_hex(cmap(norm(v))) for v in val], linewidth=1.5,
                         axvlines_kwds={"linewidth": 1, "color": "grey"})
    ax.get_legend().remove()
    pruned = [state(t) == PRUNED for t in done]
    for line, is_pruned in zip(ax.get_lines()[:len(done)], pruned, strict=True):
        if is_pruned:
            line.set(linestyle="--", linewidth=1, alpha=0.6)
    for x, (_, ticks) in enumerate(scaled.values()):
        last = x == len(scaled) - 1  # its labels go left of the axis, inside the plot
        for height, text in ticks:
            ax.text(x - 0.03 if last else x + 0.03, height, text, fontsize=7, va="center", ha="right" if last else "left",
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.7})
    ax.set_ylim(UNSET - 0.06 if any(UNSET in h for h, _ in scaled.values()) else -0.06, 1.06)
    ax.set_yticks([])
    ax.grid(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="validation accuracy", pad=0.02)
    if any(pruned):
        ax.legend(handles=[Line2D([], [], color="grey", label="completed"),
                           Line2D([], [], color="grey", linestyle="--", label="pruned (its last rung)")],
                  loc="upper left", bbox_to_anchor=(0, -0.08), ncols=2, fontsize=8, frameon=False)
    ax.set_title(title + f" ({sum(not p for p in pruned)} completed, {sum(pruned)} pruned)", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def write_sweep_reports(trials: list[dict[str, Any]], out: Path) -> list[Path]:
    """sweep_progress.png, sweep_hyperparameters.png, sweep_importance.png, sweep_parallel.png,
    sweep_gap.png, trials.csv (the trials as given, in start order, plus best_so_far) and
    importance.csv (the shares behind sweep_importance.png)."""
    columns = list(dict.fromkeys(k for t in trials for k in t))
    rows = [[t.get(c, "") for c in columns] + [float(b)] for t, b in zip(trials, best_so_far(trials), strict=False)]
    return [plot_progress(trials, out / "sweep_progress.png"),
            plot_hyperparameters(trials, out / "sweep_hyperparameters.png"),
            *plot_importance(trials, out / "sweep_importance.png", out / "importance.csv"),
            plot_parallel(trials, out / "sweep_parallel.png"),
            plot_gap(trials, out / "sweep_gap.png"),
            write_csv(out / "trials.csv", [*columns, "best_so_far"], rows)]


def log_sweep_reports(trials: list[dict[str, Any]], artifact_path: str = ARTIFACT_PATH) -> None:
    """Draw the sweep's reports and log them under `artifact_path` of the active run."""
    with tempfile.TemporaryDirectory(prefix="fmnist-sweep-reports-") as tmp:
        write_sweep_reports(trials, Path(tmp))
        mlflow.log_artifacts(tmp, artifact_path)
