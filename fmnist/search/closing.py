"""How every sweep ends, whatever its kind: the leaderboard, the winner (the best few trials
promoted, the best of them retrained, optionally averaged with the next best: an ensemble),
registration against the alias holder, and the closing table. Idempotent, so a resumed
sweep that already registered registers nothing again.

One policy for every kind; what differs is the kind's (fmnist/search/kind.py): its data, how
its trials train longer, whether it has a test set, what the registry gets and how its
holder is measured. How many trials are promoted is config (`selection.promote`: the photo
experiment sets 1, no promotion)."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run

from fmnist.config import Config
from fmnist.reports.sweep import typed
from fmnist.search.kind import SweepKind
from fmnist.search.leaderboard import leaderboard, rank_trials, trial_row
from fmnist.search.promote import promote, train_longer
from fmnist.search.registry import finish_comparison, register_if_better
from fmnist.search.tuning import format_hp

SUMMARY = ("train_accuracy", "val_accuracy", "overfit_gap")  # what every run the registry may get logs


def finalize(kind: SweepKind, tuner, cfg: Config, parent: Run, data: Any) -> dict[str, Any] | None:
    """Leaderboard; the winner: the best trial within `selection.max_gap`, or the best of the
    few promoted to longer runs, retrained for `selection.retrain_epochs` (short trials find
    the settings, one long run gets what they are worth: `winner`), or with `selection.ensemble`
    its average with the next best trials when no worse (`ensembled`); registration as a version
    of the kind's registered model, the alias moving only if it beats the holder measured on
    the same validation images. A rerun after a closing that registered compares that version
    if it was not compared yet (`finish_comparison`), and registers nothing."""
    s = cfg.selection
    board, best, done = rank_trials(parent, s.max_gap, cfg.report.enabled)
    name, holder_score = kind.registered_model(cfg), kind.holder_score(cfg, data)
    if done or best is None:
        return best and {**best, "version": done, "moved": finish_comparison(name, s.alias, done, holder_score)}
    best = promote(kind, tuner, cfg, board, data) or best
    source = ensembled(kind, cfg, board, best, winner(kind, tuner, cfg, best, data), data)
    logged = mlflow.get_run(source).data.metrics
    registration = kind.registration(cfg, source, data)
    metrics = {**{k: logged[k] for k in SUMMARY}, **registration.metrics}
    mlflow.log_metrics({f"best_{k}": v for k, v in metrics.items()})
    mlflow.set_tag("best_trial_id", best["trial_id"])
    tags = {**metrics, **{k: v for k, v in best.items() if k.startswith("hp.")}, **registration.tags,
            "sweep": cfg.sweep.name, "trial_id": best["trial_id"], "source_run": source}
    version, moved, held = register_if_better(registration.model_uri, name, s.alias, metrics["val_accuracy"], tags,
                                              holder_score)  # tags the parent `registered_version`
    return {**best, **metrics, "version": version, "moved": moved, "holder_val_accuracy": held}


def winner(kind: SweepKind, tuner, cfg: Config, best: dict[str, Any], data: Any) -> str:
    """The run whose model is registered: `best`'s trial, or, with `selection.retrain_epochs`,
    its settings retrained that long (fewer within `retrain_minutes`) as child run final-N. The
    retrain wins unless it overfits (gap above `max_gap`, as no trial may) or is worse on
    validation than the trial it retrains: a longer run is no better for being longer."""
    s, trial = cfg.selection, best["run_id"]
    if not s.retrain_epochs:
        return trial
    epochs = s.epochs_at(mlflow.get_run(trial).data.metrics.get("epoch_seconds"))
    retrained = train_longer(kind, tuner, cfg, best["trial_id"], data, epochs, "final")
    m = mlflow.get_run(retrained).data.metrics
    print(f"retrained: val {m['val_accuracy']:.4f} gap {m['overfit_gap']:+.4f} "
          f"(trial {best['trial_id']}: val {best['val_accuracy']:.4f})", flush=True)
    why = (f"overfits (gap {m['overfit_gap']:+.4f} > {s.max_gap})" if m["overfit_gap"] > s.max_gap else
           "is worse on validation" if m["val_accuracy"] < best["val_accuracy"] else "")
    if why:
        print(f"the retrained model {why}; registering trial {best['trial_id']}'s own model instead", flush=True)
        return trial
    return retrained


def ensembled(kind: SweepKind, cfg: Config, board: pd.DataFrame, best: dict[str, Any], source: str,
              data: Any) -> str:
    """The run to register: `source` (the winner's), or with `selection.ensemble` K > 1 the
    kind's average of its model and the next best K-1 eligible trials' (`kind.ensemble`),
    when that is no worse on validation. The kind's run records what it costs per photo
    beside the winner alone (about K times as much): the user weighs that, not the closing."""
    k, gap = cfg.selection.ensemble, cfg.selection.max_gap
    if k < 2:
        return source
    others = board[(board["status"] == "COMPLETED") & (board["overfit_gap"] <= gap) &
                   (board["trial_id"] != best["trial_id"])].nlargest(k - 1, "val_accuracy", keep="first")
    if others.empty:
        print(f"ensemble: no other trial has overfit_gap <= {gap}; registering the winner alone", flush=True)
        return source
    averaged = kind.ensemble(cfg, [source, *others["run_id"]], data)
    if averaged is None:
        return source
    alone, together = (mlflow.get_run(r).data.metrics["val_accuracy"] for r in (source, averaged))
    better = together >= alone
    print(f"ensemble of {len(mlflow.get_run(averaged).data.tags['members'].split(','))}: val {together:.4f}, "
          f"the winner alone {alone:.4f}: registering the {'ensemble' if better else 'winner'}", flush=True)
    return averaged if better else source


def report(kind: SweepKind, rows_best: dict[str, Any] | None, cfg: Config, parent_id: str, minutes: float) -> None:
    """The closing table: top trials and where the registered model is."""
    rows = leaderboard(mlflow.get_run(parent_id)).to_dict("records")
    print(f"\nsweep {cfg.sweep.name!r}: {len(rows)} trials (parent run {parent_id})")
    print(f"{'trial':>5}  {'status':<9} {'val':>7} {'gap':>7} " + ("   test  " if kind.test_set else " ") +
          "hyperparameters")
    for r in rows[:5]:
        hp = format_hp({k[3:]: typed(v) for k, v in trial_row(pd.Series(r)).items() if k.startswith("hp.")})
        shown = f"{number(r['test_accuracy'], '7.4f')}  " if kind.test_set else ""
        print(f"{r['trial_id']:>5}  {r['status']:<9} {number(r['val_accuracy'], '7.4f')} "
              f"{number(r['overfit_gap'], '+7.4f')} {shown}{hp}")
        if isinstance(r["command"], str):
            print(f"{'':>7}{r['command']}")
    name, alias = kind.registered_model(cfg), cfg.selection.alias
    print(fidelity(rows))
    print(f"sweep time: {minutes:.1f} min in all this run (data and photo preparation included)")
    if rows_best is None:
        print(f"no trial has overfit_gap <= {cfg.selection.max_gap}: nothing registered")
        return
    moved = {True: f"alias @{alias} moved to it", False: f"@{alias} stays on a better version",
             None: "registered earlier"}[rows_best["moved"]]
    print(f"best trial {rows_best['trial_id']}: registered models:/{name}/{rows_best['version']} ({moved}); "
          f"{kind.score(rows_best, cfg)}; tracking: {mlflow.get_tracking_uri()}")


def number(value: Any, spec: str) -> str:
    """A metric as the table shows it; blank where the trial has none (pruned, skipped, failed)."""
    width = int(spec.lstrip("+").split(".")[0])
    return " " * width if value is None or value != value else format(value, spec)


def fidelity(rows: list[dict[str, Any]]) -> str:
    """How the search spent its trials: settings trained at each rung, pruned, skipped, failed."""
    statuses = pd.Series([r["status"] for r in rows], dtype=object)
    rungs = pd.Series([r.get("rung") for r in rows], dtype=float).dropna()
    reached = ", ".join(f"rung {k}: {int((rungs >= k).sum())}" for k in range(int(rungs.max()) + 1)) \
        if len(rungs) else "no rungs"
    counts = ", ".join(f"{int((statuses == s).sum())} {s.lower()}" for s in ("COMPLETED", "PRUNED", "SKIPPED", "FAILED")
                       if (statuses == s).any())
    return f"trials: {counts}; reached {reached}"
