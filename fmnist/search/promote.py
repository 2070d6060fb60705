"""Before committing the long retrain to one trial: a short trial ranks settings by what
they reach in a few epochs, which favours small models that learn fast. The best few
eligible trials train longer first (`selection.promote`, `promote_epochs`, within
`promote_minutes`), and the one that is best after the longer run is retrained."""

from __future__ import annotations

from typing import Any

import keras
import mlflow
import pandas as pd

from fmnist.config import Config
from fmnist.search.kind import SweepKind
from fmnist.search.leaderboard import trial_row


def train_longer(kind: SweepKind, tuner, cfg: Config, trial_id: str, data: Any, epochs: int, role: str) -> str:
    """A trial's settings trained for `epochs` as a child run `<role>-<trial_id>`, by the
    kind's hypermodel for longer runs (`SweepKind.longer`: a Fashion-MNIST one stretches its
    learning-rate schedule over them and keeps the best epoch within `selection.max_gap`);
    returns the run id."""
    hp = tuner.oracle.get_trial(trial_id).hyperparameters
    with mlflow.start_run(run_name=f"{role}-{trial_id}", nested=True, tags={"role": role, "trial_id_source": trial_id}):
        print(f"{role}: trial {trial_id}'s settings for {epochs} epochs", flush=True)
        keras.utils.set_random_seed(cfg.seed)
        hypermodel = kind.longer(cfg, data)
        hypermodel.fit(hp, hypermodel.build(hp), data, epochs=epochs)
        return mlflow.active_run().info.run_id


def promote(kind: SweepKind, tuner, cfg: Config, board: pd.DataFrame, data: Any) -> dict[str, Any] | None:
    """The eligible trial that is best after `promote_epochs`, or None when fewer than two
    trials are eligible (or promotion is off): then the short trials' best stands."""
    s = cfg.selection
    eligible = board[(board["status"] == "COMPLETED") & (board["overfit_gap"] <= s.max_gap)]
    top = eligible.nlargest(s.promote, "val_accuracy", keep="first")
    if s.promote < 2 or len(top) < 2:
        return None
    # Equal terms: every candidate trains the same epochs, as many as the slowest one's share of
    # promote_minutes allows (each trial reached the same last rung, or trained the same epochs).
    paces = [mlflow.get_run(row["run_id"]).data.metrics.get("epoch_seconds") for _, row in top.iterrows()]
    epochs = min(s.promote_epochs_at(pace) for pace in paces)
    trained = max(float(row.get("epochs", 0) or 0) for _, row in top.iterrows())
    if epochs <= trained:  # a promotion no longer than the trials compares nothing new
        print(f"promote: {epochs} epochs fit in selection.promote_minutes, no more than the trials' {trained:g}: "
              "the trials' own ranking stands", flush=True)
        return None
    scored = []
    for _, row in top.iterrows():
        m = mlflow.get_run(train_longer(kind, tuner, cfg, row["trial_id"], data, epochs, "promote")).data.metrics
        print(f"promote: trial {row['trial_id']}: val {row['val_accuracy']:.4f} -> {m['val_accuracy']:.4f} "
              f"(gap {m['overfit_gap']:+.4f}) after {epochs} epochs", flush=True)
        scored.append((m["val_accuracy"] if m["overfit_gap"] <= s.max_gap else -1.0, trial_row(row)))
    return max(scored, key=lambda pair: pair[0])[1]
