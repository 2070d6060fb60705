"""How a Fashion-MNIST sweep ends: the winner retrained longer, tested once, registered, and
the closing table printed. Idempotent, so a resumed sweep that already registered skips it."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from fmnist.config import Config
from fmnist.photos.serving import log_photo_model
from fmnist.reports import log_run_reports
from fmnist.reports.predict import predict
from fmnist.reports.source import load_history
from fmnist.reports.sweep import typed
from fmnist.search.promote import promote, train_longer
from fmnist.search.registry import (
    finish_comparison,
    keras_holder_score,
    leaderboard,
    rank_trials,
    register_if_better,
    trial_row,
)
from fmnist.search.tuning import format_hp
from fmnist.training.data import Splits
from fmnist.training.fitting import margin
from fmnist.training.model import CUSTOM_OBJECTS


def finalize(tuner, cfg: Config, parent: Run, splits: Splits) -> dict[str, Any] | None:
    """Leaderboard; the winner: the best few trials promoted to longer runs, the best of them
    retrained for `selection.retrain_epochs` (short trials find the settings, one long run,
    its learning-rate schedule stretched over it, gets what they are worth); one test
    evaluation; registration. Idempotent on resume."""
    client = MlflowClient()
    board, best, done = rank_trials(parent, cfg.selection.max_gap, cfg.report.enabled)
    name = cfg.mlflow.registered_model  # a holder is measured on this sweep's validation images, as `model` was
    holder_score = keras_holder_score(name, splits.x_val, splits.y_val)
    if done or best is None:  # a closing that failed after registering is not registered twice, but compared
        return best and {**best, "version": done, "moved": finish_comparison(name, cfg.selection.alias, done, holder_score)}
    best = promote(tuner, cfg, board, splits) or best
    source = best["run_id"]
    if cfg.selection.retrain_epochs:
        epochs = cfg.selection.epochs_at(mlflow.get_run(source).data.metrics.get("epoch_seconds"))
        retrained = train_longer(tuner, cfg, best["trial_id"], splits, epochs, "final")
        gap = mlflow.get_run(retrained).data.metrics["overfit_gap"]
        if gap <= cfg.selection.max_gap:
            source = retrained
        else:
            print(f"retrained model overfits (gap {gap:+.4f} > {cfg.selection.max_gap}); "
                  f"registering trial {best['trial_id']}'s own model instead", flush=True)
    model = mlflow.keras.load_model(f"runs:/{source}/model", custom_objects=CUSTOM_OBJECTS)
    final = mlflow.get_run(source).data.metrics
    metrics = {k: final[k] for k in ("train_accuracy", "val_accuracy", "overfit_gap")}
    test = predict(model, splits.x_test)  # the one test evaluation; the full reports draw on it too
    metrics["test_accuracy"] = test.accuracy(splits.y_test)
    metrics["test_margin"] = margin(metrics["test_accuracy"], len(splits.y_test))
    log_run_reports(model, splits, load_history(client, source), cfg.report, test, run_id=source)
    mlflow.log_metrics({f"best_{k}": v for k, v in metrics.items()})
    mlflow.set_tag("best_trial_id", best["trial_id"])
    uri = log_photo_model(model, name="best_model")  # takes photos: serving and fmnist.predict
    hparams = {k: v for k, v in best.items() if k.startswith("hp.")}
    version, moved, _ = register_if_better(uri, name, cfg.selection.alias, metrics["val_accuracy"],
                                           {**metrics, **hparams, "sweep": cfg.sweep.name, "trial_id": best["trial_id"],
                                            "source_run": source}, holder_score)  # tags the parent `registered_version`
    return {**best, **metrics, "version": version, "moved": moved}


def report(rows_best: dict[str, Any] | None, cfg: Config, parent_id: str, minutes: float) -> None:
    """The closing table: top trials and where the registered model is."""
    rows = leaderboard(mlflow.get_run(parent_id)).to_dict("records")
    print(f"\nsweep {cfg.sweep.name!r}: {len(rows)} trials (parent run {parent_id})")
    test = not cfg.photos  # photos have no test set: the validation photos are the check
    print(f"{'trial':>5}  {'status':<9} {'val':>7} {'gap':>7} " + ("   test  " if test else " ") + "hyperparameters")
    for r in rows[:5]:
        hp = format_hp({k[3:]: typed(v) for k, v in trial_row(pd.Series(r)).items() if k.startswith("hp.")})
        shown = f"{r['test_accuracy']:7.4f}  " if test else ""
        print(f"{r['trial_id']:>5}  {r['status']:<9} {r['val_accuracy']:7.4f} {r['overfit_gap']:+7.4f} {shown}{hp}")
        if isinstance(r["command"], str):
            print(f"{'':>7}{r['command']}")
    name, alias = (cfg.finetune.registered_model if cfg.photos else cfg.mlflow.registered_model), cfg.selection.alias
    print(f"sweep time: {minutes:.1f} min in all this run (data and photo preparation included)")
    if rows_best is None:
        print(f"no trial has overfit_gap <= {cfg.selection.max_gap}: nothing registered")
        return
    moved = {True: f"alias @{alias} moved to it", False: f"@{alias} stays on a better version",
             None: "registered earlier"}[rows_best["moved"]]
    score = (f"validation accuracy {rows_best['val_accuracy']:.4f} on {cfg.validation or 'a split of ' + cfg.photos}"
             if cfg.photos else test_score(rows_best))
    print(f"best trial {rows_best['trial_id']}: registered models:/{name}/{rows_best['version']} ({moved}); "
          f"{score}; tracking: {mlflow.get_tracking_uri()}")


def test_score(best: dict[str, Any]) -> str:
    """The registered model's test accuracy and its 95% interval: 93.4 and 93.8 differ by
    less than two intervals' half-widths on 10,000 images (a resumed sweep lacks the margin)."""
    shown = f"test accuracy {best.get('test_accuracy', float('nan')):.4f}"
    return shown + (f" ± {best['test_margin']:.4f} (95% interval)" if "test_margin" in best else "")
