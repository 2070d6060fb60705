"""The sweep's record in MLflow: its trials as a leaderboard, the winner, the registry alias.

MLflow, not the tuner's memory, is the source of truth here, so a resumed sweep and a
fresh one produce the same leaderboard.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable, Optional

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.errors import NoModelError
from fmnist.photos.serving import load_keras
from fmnist.reports.sweep import log_sweep_reports
from fmnist.training.fitting import accuracy

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
    """One row per trial that ended (finished or failed), best validation accuracy first, with
    the command that trains its settings again: MLflow's own query over the parent's children."""
    runs = mlflow.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=10000)
    col = lambda name: runs[name] if name in runs else pd.Series(math.nan, index=runs.index, dtype=object)  # noqa: E731
    runs = runs[col("tags.trial_id").notna() & col("status").isin(["FINISHED", "FAILED"])]
    finished = runs["status"] == "FINISHED"  # a failed trial's metrics are its last partial epoch's: no result
    board = pd.DataFrame({
        "trial_id": col("tags.trial_id"), "run_id": col("run_id"),
        "status": col("tags.trial_status").fillna(col("status")),
        **{k: col(f"metrics.{k}").astype(float).where(finished) for k in SUMMARY},
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


def alias_holder(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register_if_better(model_uri: str, name: str, alias: str, score: float, tags: dict[str, Any],
                       holder_score: Callable[[str], Optional[float]]) -> tuple[str, bool, Optional[float]]:
    """Register a new version; move `alias` to it only if `score` beats the holder's score
    measured now, by `holder_score(version)`, on the same images as `score`: a number logged
    by another run on another split would not compare. None from it (say, other classes)
    moves the alias, and so does a holder that cannot be loaded or measured (`comparable`).
    The holder is measured before the version exists, so a process killed while it loads a
    big or foreign model leaves nothing registered; the active run (a sweep's parent) is
    tagged `registered_version` as soon as it exists, so a rerun of a closing that failed
    after that registers nothing twice (`finish_comparison`). The version's tag
    `compared_with` keeps each holder's score on those images.
    Returns (version, moved, the score of the holder it was last compared with)."""
    client = MlflowClient()
    measure = comparable(name, holder_score)
    holder = alias_holder(client, name, alias)
    scores = {} if holder is None else {str(holder.version): measure(str(holder.version))}
    version = str(mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()}).version)
    if mlflow.active_run():
        mlflow.set_tag("registered_version", version)
    moved, held = compare(client, name, alias, version, score, measure, scores)
    return version, moved, held


def finish_comparison(name: str, alias: str, version: str,
                      holder_score: Callable[[str], Optional[float]]) -> Optional[bool]:
    """A rerun of a closing that registered `version` and failed before comparing it (it has
    no `compared_with` tag) compares it now, with the `val_accuracy` it was registered with;
    None when it was compared already: the alias moved then or not, and that stands."""
    client = MlflowClient()
    tags = client.get_model_version(name, version).tags
    if "compared_with" in tags or "val_accuracy" not in tags:
        return None
    return compare(client, name, alias, version, float(tags["val_accuracy"]), comparable(name, holder_score))[0]


def compare(client: MlflowClient, name: str, alias: str, version: str, score: float,
            holder_score: Callable[[str], Optional[float]],
            scores: Optional[dict[str, Optional[float]]] = None) -> tuple[bool, Optional[float]]:
    """`settle`, then the scores kept on the version: (moved, the last holder's score)."""
    moved, scores, last = settle(client, name, alias, version, score, holder_score, scores)
    client.set_model_version_tag(name, version, "compared_with", json.dumps(scores))
    return moved, scores.get(last)


def comparable(name: str, holder_score: Callable[[str], Optional[float]]) -> Callable[[str], Optional[float]]:
    """`holder_score` where any failure to load or measure a holder (a Lambda layer that
    safe mode refuses, another input, a file gone from the store) is one warning line and
    None, not comparable: a broken holder would otherwise end every later sweep at its
    closing and keep the alias for ever."""

    def score(version: str) -> Optional[float]:
        try:
            return holder_score(version)
        except Exception as e:  # noqa: BLE001 - whatever the model holds, the sweep must close
            reason = (str(e).splitlines() or [""])[0]
            print(f"warning: models:/{name}/{version} cannot be loaded or measured ({type(e).__name__}: {reason}): "
                  "not comparable, the alias moves", file=sys.stderr, flush=True)
            return None

    return score


def settle(client: MlflowClient, name: str, alias: str, version: str, score: float,
           holder_score: Callable[[str], Optional[float]],
           scores: Optional[dict[str, Optional[float]]] = None) -> tuple[bool, dict[str, Optional[float]], str]:
    """Move `alias` to `version` unless its holder scores at least `score`, reading the alias
    again after scoring a holder and after each move: two sweeps that close at once each
    read, compare and set, and without the second read the later set would win, better or
    not. Each holder is scored once (`scores`: those scored already). A holder this process
    moved the alias from that comes back was put back by a process that finds it better on
    its own images: it keeps the alias, so two processes never pass it back and forth.
    Returns (moved, each holder's score, the holder compared last)."""
    scores = dict(scores or {})
    overruled: set[str] = set()
    last = ""
    while True:
        holder = alias_holder(client, name, alias)
        current = "" if holder is None else str(holder.version)
        if current == version:
            return True, scores, last
        if current and current not in scores:
            scores[current] = holder_score(current)  # slow: the alias may move meanwhile
            continue
        last, held = current, scores.get(current)
        if current in overruled or (held is not None and held >= score):
            return False, scores, last
        overruled.add(current)
        client.set_registered_model_alias(name, alias, version)


def keras_holder_score(name: str, x: np.ndarray, y: np.ndarray) -> Callable[[str], Optional[float]]:
    """`holder_score` for a Fashion-MNIST sweep: a version's Keras model measured on the
    challenger's validation images, as `fitting.accuracy` measured the challenger's own
    val_accuracy. None (not comparable) for a model that cannot be loaded or takes other inputs."""

    def score(version: str) -> Optional[float]:
        try:
            model = load_keras(f"models:/{name}/{version}", name)
        except NoModelError as e:
            print(f"note: models:/{name}/{version}: {e}: not comparable, the alias moves", file=sys.stderr)
            return None
        if tuple(model.input_shape[1:]) != x.shape[1:]:
            print(f"note: models:/{name}/{version} takes {model.input_shape[1:]} inputs, not {x.shape[1:]}: "
                  "not comparable, the alias moves", file=sys.stderr)
            return None
        return accuracy(model, x, y)

    return score
