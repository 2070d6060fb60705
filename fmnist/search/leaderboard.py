"""The sweep's record in MLflow: its trials as child runs of the parent run, the leaderboard
they make, and the winner within `selection.max_gap`.

MLflow, not the tuner's memory, is the source of truth here, so a resumed sweep and a
fresh one produce the same leaderboard.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from fmnist.reports.sweep import log_sweep_reports

SUMMARY = ("val_accuracy", "overfit_gap", "train_accuracy", "test_accuracy")


def child_runs(client: MlflowClient, parent: Run, **tag_filter: str) -> list[Run]:
    """Runs nested under `parent`, oldest first."""
    extra = "".join(f" and tags.{k} = '{v}'" for k, v in tag_filter.items())
    return client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'{extra}",
        order_by=["attributes.start_time ASC"], max_results=10000,
    )


def close_interrupted(client: MlflowClient, parent: Run, **tag_filter: str) -> int:
    """Child runs (matching `tag_filter`) left RUNNING by a killed process end as KILLED;
    their trials run again."""
    stale = [r for r in child_runs(client, parent, **tag_filter) if r.info.status == "RUNNING"]
    for r in stale:
        client.set_terminated(r.info.run_id, "KILLED")
    return len(stale)


def leaderboard(parent: Run) -> pd.DataFrame:
    """One row per trial that ended (finished, pruned, skipped or failed), best validation
    accuracy first (a pruned trial's is at the rung where it stopped), with the command that
    trains its settings again: MLflow's own query over the parent's children."""
    runs = mlflow.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=10000)
    col = lambda name: runs[name] if name in runs else pd.Series(math.nan, index=runs.index, dtype=object)  # noqa: E731
    runs = runs[col("tags.trial_id").notna() & col("status").isin(["FINISHED", "FAILED"])]
    finished = runs["status"] == "FINISHED"  # a failed trial's metrics are its last partial epoch's: no result
    board = pd.DataFrame({
        "trial_id": col("tags.trial_id"), "run_id": col("run_id"),
        "status": col("tags.trial_status").fillna(col("status")),
        **{k: col(f"metrics.{k}").astype(float).where(finished) for k in SUMMARY},
        # a pruned sweep's fidelity: the last rung reached, the epochs trained, the value at the first rung
        "rung": col("metrics.rung").astype(float), "epochs": col("metrics.epochs_run").astype(float),
        "first_val": col("metrics.val_rung_0").astype(float),
        "seconds": (col("end_time") - col("start_time")).dt.total_seconds(),
        "command": col("tags.command"),
        **{f"hp.{c[7:]}": runs[c] for c in sorted(runs) if c.startswith("params.") and is_hyperparameter(c[7:])},
    })
    return board.sort_values("val_accuracy", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def publish_leaderboard(parent: Run) -> pd.DataFrame:
    """The leaderboard, logged to the active (parent) run as leaderboard.csv and .md."""
    board = leaderboard(parent)
    mlflow.log_text(board.to_csv(index=False), "leaderboard.csv")
    mlflow.log_text(as_markdown(board), "leaderboard.md")
    return board


def rank_trials(parent: Run, max_gap: float, draw: bool) -> tuple[pd.DataFrame, dict[str, Any] | None, str | None]:
    """The sweep's end, either kind: the leaderboard published (and its plots drawn), the best
    trial within `max_gap`, and the version a run of this sweep already registered (resume)."""
    board = publish_leaderboard(parent)
    if draw:
        log_sweep_reports(board.assign(order=board["trial_id"].astype(int)).sort_values("order").to_dict("records"))
    return board, best_eligible(board, max_gap), parent.data.tags.get("registered_version")


def is_hyperparameter(param: str) -> bool:
    """Trial params less keras-tuner's own (`tuner/epochs`) and what MLflow logs of a logged
    pyfunc's config (`photo/size`, `classes`, `preprocess`)."""
    return "/" not in param and param not in ("classes", "preprocess")


def best_eligible(board: pd.DataFrame, max_gap: float) -> dict[str, Any] | None:
    """Highest validation accuracy among finished trials that do not overfit."""
    ok = board[(board["status"] == "COMPLETED") & (board["overfit_gap"] <= max_gap)]
    return None if ok.empty else trial_row(ok.loc[ok["val_accuracy"].idxmax()])


def trial_row(row: pd.Series) -> dict[str, Any]:
    """A leaderboard row as a dict, less the hyperparameters this trial did not have."""
    return {k: v for k, v in row.items() if not (k.startswith("hp.") and pd.isna(v))}


def as_markdown(board: pd.DataFrame) -> str:
    columns = [c for c in board if c not in ("run_id", "command")]
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else "" if v is None else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in board.to_dict("records")]
    return "\n".join(lines) + "\n"
