"""The sweep's record in MLflow: its trials as a leaderboard, the winner, the registry alias.

MLflow, not the tuner's memory, is the source of truth here, so a resumed sweep and a
fresh one produce the same leaderboard.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Callable, Optional

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

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


def leaderboard(client: MlflowClient, parent: Run) -> list[dict[str, Any]]:
    """One row per trial that ended (finished or failed), best validation accuracy first."""
    rows = []
    for r in child_runs(client, parent):
        if "trial_id" not in r.data.tags or r.info.status not in ("FINISHED", "FAILED"):
            continue
        # A failed trial's metrics are whatever its last partial epoch logged, not a result.
        m = r.data.metrics if r.info.status == "FINISHED" else {}
        rows.append({
            "trial_id": r.data.tags["trial_id"], "run_id": r.info.run_id,
            "status": r.data.tags.get("trial_status", r.info.status),
            **{k: m.get(k, math.nan) for k in SUMMARY},
            "seconds": ((r.info.end_time or r.info.start_time) - r.info.start_time) / 1000,
            **{f"hp.{k}": v for k, v in sorted(r.data.params.items()) if is_hyperparameter(k)},
        })
    return sorted(rows, key=lambda row: -row["val_accuracy"] if not math.isnan(row["val_accuracy"]) else 1)


def publish_leaderboard(client: MlflowClient, parent: Run) -> list[dict[str, Any]]:
    """The leaderboard, logged to the active (parent) run as leaderboard.csv and .md."""
    rows = leaderboard(client, parent)
    mlflow.log_text(as_csv(rows), "leaderboard.csv")
    mlflow.log_text(as_markdown(rows), "leaderboard.md")
    return rows


def is_hyperparameter(param: str) -> bool:
    """Trial params less keras-tuner's own (`tuner/epochs`) and what MLflow logs of a logged
    pyfunc's config (`photo/size`, `classes`, `preprocess`)."""
    return "/" not in param and param not in ("classes", "preprocess")


def best_eligible(rows: list[dict[str, Any]], max_gap: float) -> dict[str, Any] | None:
    """Highest validation accuracy among finished trials that do not overfit."""
    ok = [r for r in rows if r["status"] == "COMPLETED" and r["overfit_gap"] <= max_gap]
    return max(ok, key=lambda r: r["val_accuracy"], default=None)


def as_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def as_markdown(rows: list[dict[str, Any]], limit: int | None = None) -> str:
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c != "run_id"]
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows[:limit]]
    return "\n".join(lines) + "\n"


def alias_holder(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register(model_uri: str, name: str, alias: str, tags: dict[str, Any]) -> tuple[str, bool]:
    """Register a new version; move `alias` to it only if its val_accuracy beats the holder's,
    so sweeps run on different days compete on the same footing. Returns (version, moved)."""
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()}).version
    holder = alias_holder(client, name, alias)
    better = holder is None or float(tags["val_accuracy"]) > float(holder.tags.get("val_accuracy", "-inf"))
    if better:
        client.set_registered_model_alias(name, alias, version)
    return version, better


def register_if_better(model_uri: str, name: str, alias: str, score: float, tags: dict[str, Any],
                       holder_score: Callable[[str], Optional[float]]) -> tuple[str, bool, Optional[float]]:
    """Register a new version; move `alias` to it only if `score` beats the holder's score
    measured now, by `holder_score(version)`, on the same photos: a number logged by another
    run on another split would not compare. None from it (say, other classes) moves the
    alias. Returns (version, moved, the holder's score)."""
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()}).version
    holder = alias_holder(client, name, alias)
    held = holder_score(holder.version) if holder is not None else None
    moved = held is None or score > held
    if moved:
        client.set_registered_model_alias(name, alias, version)
    return version, moved, held
