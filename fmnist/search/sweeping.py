"""A sweep from start to end, for any kind of sweep (fmnist/search/kind.py; the kinds are in
fmnist/kinds/): the data, the parent run (new, or the interrupted one that rerunning the same
command resumes), the search here or served to workers as a chief, then the sweep's closing
(fmnist/search/closing.py)."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.config import Config
from fmnist.errors import ConfigError, SweepError
from fmnist.files import atomic
from fmnist.search.closing import finalize, report
from fmnist.search.cluster import follow_launcher, launch, limit_threads, worker_count
from fmnist.search.distributed import (
    Chief,
    check_port,
    interrupt_on_sigterm,
)
from fmnist.search.fingerprint import fingerprint
from fmnist.search.kind import SweepKind
from fmnist.search.leaderboard import close_interrupted
from fmnist.search.state import MARKER, claim, clear, saved_marker
from fmnist.search.tuning import failure, make_tuner
from fmnist.search.worker import work
from fmnist.training.fitting import seed_everything
from fmnist.training.tracking import flatten, run_tags, use_store

LOCKS = ".locks"  # under sweep.dir; no sweep name starts with '.', so it is no sweep's state folder


@contextmanager
def locked(sweep_dir: Path, name: str) -> Iterator[None]:
    """Hold sweep `name` for as long as the block runs: a fresh start clears the sweep's files
    in <dir>/<name>, so a second process on the same name would delete the first's trials and
    marker. The lock file lives outside that folder (the deletion cannot take it) and is never
    removed (two processes could then lock two different files); the kernel drops the lock
    when the process ends, however it ends. It holds the holder's pid for the message."""
    path = sweep_dir / LOCKS / f"{name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # sweep.dir is a file, or lies under one, or cannot be written
        raise ConfigError(f"sweep.dir={str(sweep_dir)!r}: cannot hold sweep state: {path.parent}: {e.strerror}") from None
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise ConfigError(f"sweep.name={name!r}: process {holder} is running this sweep ({sweep_dir / name}); "
                              "wait for it to end or choose another sweep.name") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield


def resumed_parent(cfg: Config, state: Path, saved: dict[str, str]) -> str:
    """The parent run the marker next to the tuner state recorded, if it is this config's sweep
    and this tracking store holds it."""
    setting, run_id = f"sweep.name={cfg.sweep.name!r}", saved["run_id"]
    if saved["fingerprint"] != fingerprint(cfg):
        raise ConfigError(f"{setting}: {state} holds a sweep with a different config; "
                          "rerun with sweep.fresh=true or choose another sweep.name")
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        uri, was = mlflow.get_tracking_uri(), saved.get("tracking_uri")
        where = f"; the sweep logged to {was}: set MLFLOW_TRACKING_URI (or mlflow.tracking_uri) to that" if was else ""
        raise ConfigError(f"{setting}: its parent run {run_id} is not in the tracking store {uri}{where}, "
                          "or rerun with sweep.fresh=true to start the sweep again") from None
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(f"{setting}: its parent run {run_id} is deleted; restore it (mlflow runs restore --run-id "
                          f"{run_id}) or rerun with sweep.fresh=true to start the sweep again")
    return run_id


def new_parent(cfg: Config, state: Path) -> str:
    """A new parent run for the sweep, recorded next to the tuner state for a resume."""
    marker = state / MARKER
    tags = run_tags(tuner=cfg.tuner.kind, space=json.dumps(cfg.model_dump()["search"]), sweep=cfg.sweep.name)
    with mlflow.start_run(run_name=cfg.sweep.name, tags=tags) as run:
        mlflow.log_params(flatten(cfg.model_dump(exclude={"search", "hydra"})))
        mlflow.log_dict(cfg.model_dump(), "config.yaml")
    with atomic(marker, "w") as f:  # a sweep killed while writing its marker could not resume
        f.write(json.dumps({"run_id": run.info.run_id, "fingerprint": fingerprint(cfg),
                            "tracking_uri": mlflow.get_tracking_uri()}))
    return run.info.run_id


def search(tuner, cfg: Config, data: Any) -> None:
    """Run the trials here or, as the chief, serve them to workers until all have ended."""
    if cfg.distributed.role != "chief":
        try:
            tuner.search(data, verbose=0)
        except RuntimeError as e:
            give_up(tuner, e)
        trials = list(tuner.oracle.trials.values())
        if trials and not any(t.status == "COMPLETED" for t in trials):  # all skipped, or a ceiling under 3
            give_up(tuner, RuntimeError("consecutive failures"))
        return
    tuner.oracle.verbose = 0  # the chief prints its own lines
    tuner.save()
    info = {"parent_run_id": tuner.parent_id, "fingerprint": fingerprint(cfg), "tracking_uri": mlflow.get_tracking_uri()}
    Chief(tuner.oracle, cfg.distributed, info).serve()
    close_interrupted(MlflowClient(), mlflow.get_run(tuner.parent_id))  # a worker that vanished at the very end


def give_up(tuner, error: RuntimeError) -> None:
    """keras-tuner ends a search whose trials keep failing with a RuntimeError (max_consecutive_failed_trials):
    one line, with the reason the last trial gave."""
    if "consecutive failures" not in str(error):
        raise error
    trials = list(tuner.oracle.trials.values())
    failed = [t for t in trials if t.status == "FAILED"]
    in_a_row = getattr(tuner.oracle, "failure_limit", tuner.oracle.max_consecutive_failed_trials)
    which = "every trial failed" if len(failed) == len(trials) else f"{in_a_row} trials in a row failed"
    last = failure(failed[-1]) if failed else "no reason recorded"
    raise SweepError(f"{which}, so the search stopped; the last one: {last}. Fix the cause (the search space, "
                     "sweep.trial_minutes) and rerun with sweep.fresh=true") from None


def sweep(cfg: Config, kind: SweepKind) -> int:
    """The sweep of `kind` (fmnist.kinds picks it for the config), its state locked from before
    it is claimed or cleared until the end. A worker's state is <name>-workers/<tuner_id>, not
    the chief's: it takes no lock."""
    if worker_count(cfg):
        return launch(cfg, sys.argv[1:])
    with nullcontext() if cfg.distributed.role == "worker" else locked(Path(cfg.sweep.dir), cfg.sweep.name):
        return sweep_here(cfg, kind)


def sweep_here(cfg: Config, kind: SweepKind) -> int:
    """Data, parent run, search (or the worker's part of it) and closing, in this process."""
    if cfg.distributed.role == "chief":  # before anything is loaded, opened or marked KILLED
        check_port(cfg.distributed.address)
    state = Path(cfg.sweep.dir) / cfg.sweep.name
    saved = None if cfg.distributed.role == "worker" else claimed(cfg, state)
    start = time.perf_counter()
    limit_threads(cfg.distributed.threads)
    seed_everything(cfg.seed)
    data = kind.data(cfg)
    use_store(cfg.mlflow)
    cfg = kind.usable(cfg)
    if cfg.distributed.role != "none":
        interrupt_on_sigterm()
        follow_launcher()
    hypermodel = kind.hypermodel(cfg, data, cfg.sweep.trial_minutes)
    if cfg.distributed.role == "worker":
        return work(cfg, hypermodel, data)
    fresh = saved is None
    if fresh:  # our files only: keras-tuner's own overwrite would delete the whole folder
        clear(state)
        first = kind.first_trials(cfg)
        parent_id = new_parent(cfg, state)  # after the old state is cleared, marker included
    else:  # checks the config and store before keras-tuner reloads a state that does not match
        first, parent_id = [], resumed_parent(cfg, state, saved)
    tuner = make_tuner(cfg, hypermodel, parent_id, cfg.sweep.dir, first=first)
    with mlflow.start_run(run_id=parent_id) as parent:
        try:
            killed = close_interrupted(MlflowClient(), parent)
            print(f"sweep {cfg.sweep.name!r} ({cfg.tuner.kind}): {'resumed' if not fresh else 'new'}, parent run "
                  f"{parent_id}" + (f"; {killed} interrupted trial run(s) marked KILLED" if killed else ""), flush=True)
            search(tuner, cfg, data)
            best = finalize(kind, tuner, cfg, mlflow.get_run(parent_id), data)
            minutes = (time.perf_counter() - start) / 60
            mlflow.log_metric("sweep_minutes", minutes)
        except KeyboardInterrupt:  # inside the `with`, which would end the parent FAILED: it is resumable
            while mlflow.active_run():
                mlflow.end_run("KILLED")
            print(f"\ninterrupted: rerun the same command to resume sweep {cfg.sweep.name!r}", file=sys.stderr)
            return 130
    report(kind, best, cfg, parent_id, minutes)
    return 0


def claimed(cfg: Config, state: Path) -> dict[str, str] | None:
    """The sweep's state folder made ours (fmnist/search/state.py), and what its marker holds
    for a resume; None: a fresh start. Before anything is loaded: a refusal costs nothing."""
    setting = f"sweep.name={cfg.sweep.name!r}"
    claim(state, setting, cfg.sweep.fresh)
    return None if cfg.sweep.fresh else saved_marker(state, setting)
