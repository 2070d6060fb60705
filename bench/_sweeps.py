"""What the sweep benchmarks (bench/sweep_repeat.py, bench/search_lift.py) share: running one
default sweep in a store of its own, and reading back from that store what it did.

Everything is read from the MLflow record through `MlflowClient.search_runs`, never from the
sweep's code, so a benchmark reads a sweep of any engine: the parent run (tag `sweep`, no
`mlflow.parentRunId`), its trials (child runs with tag `trial_id`; promotion and retrain runs
carry tag `role` instead), each trial's `trial_status` (COMPLETED, PRUNED, SKIPPED, FAILED),
metric `rung` and params (the trial's hyperparameters at their config paths), and the model
version the sweep registered (parent tag `registered_version`, version tags `test_accuracy`,
`overfit_gap`, `trial_id`). No TensorFlow is imported: `--help` answers at once.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
TEST_IMAGES = 10_000  # Fashion-MNIST's test set: every figure here is measured on all of it
REGISTERED_MODEL = "fmnist-cnn"
EVALUATED = ("COMPLETED", "PRUNED")  # a trial that trained to some rung and was measured there
# Not hyperparameters: keras-tuner's own bookkeeping (`tuner/epochs`, any name with a "/"), what
# MLflow logs of a logged pyfunc's config, and the fidelity a trial is trained at (a setting
# trained 3 and 6 epochs by the old engine's searched `trainer.epochs` is one setting, twice).
NOT_SETTINGS = frozenset({"classes", "preprocess", "trainer.epochs"})


def margin(p: float, n: int = TEST_IMAGES) -> float:
    """Half-width of the 95% interval of an accuracy `p` measured on `n` images (normal
    approximation), as fmnist.training.fitting.margin (not imported: it loads Keras)."""
    return 1.96 * math.sqrt(p * (1 - p) / n) if 0 <= p <= 1 else float("nan")


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """(mean, half-width of its 95% t-interval) over `values`; None for fewer than two."""
    if len(values) < 2:
        return None
    from scipy import stats  # scikit-learn's dependency, so always installed with fmnist

    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.mean(values), float(half)


def commit() -> str:
    """The checkout's short commit, "+dirty" with uncommitted changes (read only: no index refresh)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True,
                                 timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain") else "")


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder.resolve() / 'mlflow.db'}"


def refuse_used(folders: list[Path]) -> None:
    """A folder that holds a store already would resume its sweep (minutes of a finish, not of a
    sweep) or mix two runs' records: refused, all of them checked before anything starts."""
    used = [f for f in folders if (f / "mlflow.db").exists()]
    if used:
        sys.exit(f"error: {', '.join(map(str, used))} already hold(s) an MLflow store (mlflow.db): "
                 "choose another --out, or remove them")


def run_sweep(seed: int, folder: Path, overrides: list[str]) -> float:
    """`python -m fmnist.sweep seed=SEED overrides...` in `folder` (its own sqlite store and
    sweep state, its output in sweep.log); its wall minutes, process start included."""
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(folder / "sweep.log", "w") as log:
        done = subprocess.run([sys.executable, "-m", "fmnist.sweep", f"seed={seed}", *overrides], cwd=folder,
                              stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "MLFLOW_TRACKING_URI": store_uri(folder)})
    if done.returncode:
        sys.exit(f"error: the sweep for seed {seed} exited {done.returncode}; see {folder / 'sweep.log'}")
    return (time.perf_counter() - start) / 60


def all_runs(client: MlflowClient, where: str) -> list[Run]:
    """Every run in the store matching `where`, oldest first (all pages)."""
    ids = [e.experiment_id for e in client.search_experiments()]
    runs, token = [], None
    while True:
        page = client.search_runs(ids, where, order_by=["attributes.start_time ASC"], max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def sweep_parent(client: MlflowClient) -> Run:
    """The sweep's parent run: tag `sweep`, no parent of its own; of several, the newest that registered."""
    parents = [r for r in all_runs(client, "tags.sweep LIKE '%'") if "mlflow.parentRunId" not in r.data.tags]
    if not parents:
        sys.exit(f"error: no sweep parent run in {client.tracking_uri}")
    registered = [r for r in parents if r.data.tags.get("registered_version")]
    return (registered or parents)[-1]


@dataclass
class Trial:
    trial_id: str
    status: str
    rung: int | None  # highest rung reached (None: not logged, as by the engine before ASHA)
    error: str
    settings: frozenset = field(default_factory=frozenset)  # (param, value) pairs: its hyperparameters


def trials(client: MlflowClient, parent: Run) -> list[Trial]:
    """The sweep's trials, one per `trial_id` (a trial interrupted and run again has several runs:
    the status, error and settings are the newest run's, the rung the highest any reached)."""
    runs = [r for r in all_runs(client, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
            if "trial_id" in r.data.tags and "role" not in r.data.tags]
    by_id: dict[str, list[Run]] = {}
    for r in runs:  # oldest first
        by_id.setdefault(r.data.tags["trial_id"], []).append(r)
    out = []
    for trial_id, rs in by_id.items():
        last = rs[-1]
        rungs = [int(r.data.metrics["rung"]) for r in rs if "rung" in r.data.metrics]
        status = last.data.tags.get("trial_status") or {"FINISHED": "COMPLETED"}.get(last.info.status, last.info.status)
        with_params = [r for r in rs if r.data.params] or [last]
        settings = frozenset((k, v) for k, v in with_params[-1].data.params.items()
                             if "/" not in k and k not in NOT_SETTINGS)
        out.append(Trial(trial_id, status, max(rungs) if rungs else None, last.data.tags.get("trial_error", ""),
                         settings))
    return out


def too_slow(t: Trial) -> bool:
    """A slot the time limit took: SKIPPED (stopped before training), or FAILED as "too slow"."""
    reason = t.error.split("FailedTrialError: ", 1)[-1].strip()
    return t.status == "SKIPPED" or (t.status == "FAILED" and reason.startswith("too slow"))


def per_rung(ts: list[Trial]) -> dict[int, int]:
    """Distinct trials that reached at least rung k, for each k. A trial with no `rung` metric
    that was evaluated (the engine before ASHA, or pruner=none) counts at rung 0."""
    reached = [t.rung if t.rung is not None else (0 if t.status in EVALUATED else -1) for t in ts]
    top = max(reached, default=-1)
    return {k: sum(r >= k for r in reached) for k in range(top + 1)}


def summary(client: MlflowClient, parent: Run) -> dict[str, Any]:
    """What the sweep evaluated and lost: distinct settings evaluated at some fidelity (COMPLETED
    or PRUNED), settings per rung, SKIPPED trials, slots lost to too-slow, trials in all."""
    ts = trials(client, parent)
    return {
        "trials": len(ts),
        "settings": len({t.settings for t in ts if t.status in EVALUATED}),
        "per_rung": per_rung(ts),
        "skipped": sum(t.status == "SKIPPED" for t in ts),
        "lost": sum(too_slow(t) for t in ts),
        "search_minutes": parent.data.params.get("sweep.search_minutes", "?"),
    }


def rungs_text(per: dict[int, int]) -> str:
    return ", ".join(f"{k}: {n}" for k, n in per.items()) or "none"


def registered(client: MlflowClient, parent: Run, name: str = REGISTERED_MODEL) -> dict[str, Any]:
    """The model version this sweep registered (its parent's `registered_version`; else the
    `best` alias): test accuracy, gap and trial; NaNs when the sweep registered none (no trial
    within the gap limit)."""
    number = parent.data.tags.get("registered_version")
    try:
        version = (client.get_model_version(name, number) if number
                   else client.get_model_version_by_alias(name, "best"))
    except MlflowException:
        return {"test": float("nan"), "gap": float("nan"), "trial": "none registered", "version": None}
    tags = version.tags
    return {"test": float(tags.get("test_accuracy", "nan")), "gap": float(tags.get("overfit_gap", "nan")),
            "trial": tags.get("trial_id", "?"), "version": version.version}


def read_sweep(folder: Path) -> tuple[MlflowClient, Run, dict[str, Any]]:
    """The store in `folder`: its client, the sweep's parent run, and `summary` with `registered` merged in."""
    client = MlflowClient(store_uri(folder))
    parent = sweep_parent(client)
    return client, parent, {**summary(client, parent), **registered(client, parent)}


def pct(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.2%} ± {margin(p):.2%}"


def seeds_parser(doc: str, default_out: str, what: str) -> argparse.ArgumentParser:
    """The arguments both sweep benchmarks take: seeds, the folder of their stores, and Hydra
    overrides after `--` (`what` says which runs get them)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path(default_out), help="one folder and store per seed below it")
    parser.add_argument("overrides", nargs="*", help=f"Hydra overrides for {what} (after --)")
    return parser


def each_seed(args: argparse.Namespace, header: str, measure: Callable[[int, Path, float], dict],
              row: Callable[[dict], str]) -> list[dict]:
    """For each seed, one after another: the sweep in its own folder and store, timed from
    outside, then `measure(seed, folder, minutes)`; its table row is printed as it comes."""
    folders = {seed: args.out / f"seed-{seed}" for seed in args.seeds}
    refuse_used(list(folders.values()))
    print(header, flush=True)
    rows = []
    for seed, folder in folders.items():
        rows.append(measure(seed, folder, run_sweep(seed, folder, args.overrides)))
        print(row(rows[-1]), flush=True)
    return rows
