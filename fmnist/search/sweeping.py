"""A sweep from start to end: the data, the parent run (new, or the interrupted one that
rerunning the same command resumes), the search here or served to workers as a chief,
then the sweep's closing (fmnist/search/closing.py, or the photo sweep's)."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import mlflow
from mlflow.tracking import MlflowClient

from fmnist.config import Config
from fmnist.errors import ConfigError
from fmnist.files import atomic
from fmnist.photos.finetuning import photo_data
from fmnist.photos.tuning import finalize_photos, usable_space
from fmnist.search.closing import finalize, report
from fmnist.search.cluster import follow_launcher, launch, limit_threads, worker_count
from fmnist.search.distributed import (
    Chief,
    check_port,
    interrupt_on_sigterm,
)
from fmnist.search.fingerprint import fingerprint
from fmnist.search.registry import close_interrupted
from fmnist.search.seeding import first_trials, known_configs
from fmnist.search.tuning import make_tuner
from fmnist.search.worker import work
from fmnist.training.data import Splits, load_splits
from fmnist.training.fitting import seed_everything
from fmnist.training.tracking import flatten, run_tags, use_store

MARKER = "mlflow_parent_run.json"
LOCKS = ".locks"  # under sweep.dir; no sweep name starts with '.', so it is no sweep's state folder


@contextmanager
def locked(sweep_dir: Path, name: str) -> Iterator[None]:
    """Hold sweep `name` for as long as the block runs: keras-tuner deletes <dir>/<name> on a
    fresh start, so a second process on the same name would delete the first's trials and
    marker. The lock file lives outside that folder (the deletion cannot take it) and is never
    removed (two processes could then lock two different files); the kernel drops the lock
    when the process ends, however it ends. It holds the holder's pid for the message."""
    path = sweep_dir / LOCKS / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
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


def open_parent(cfg: Config, state: Path, fresh: bool) -> str:
    """The sweep's parent run: the one recorded next to the tuner state, or a new one."""
    marker = state / MARKER
    if not fresh and marker.exists():
        saved = json.loads(marker.read_text())
        if saved["fingerprint"] != fingerprint(cfg):
            raise ConfigError(f"sweep.name={cfg.sweep.name!r}: {state} holds a sweep with a different config; "
                              "rerun with sweep.fresh=true or choose another sweep.name")
        return saved["run_id"]
    tags = run_tags(tuner=cfg.tuner.kind, space=json.dumps(cfg.model_dump()["search"]), sweep=cfg.sweep.name)
    with mlflow.start_run(run_name=cfg.sweep.name, tags=tags) as run:
        mlflow.log_params(flatten(cfg.model_dump(exclude={"search", "hydra"})))
        mlflow.log_dict(cfg.model_dump(), "config.yaml")
    state.mkdir(parents=True, exist_ok=True)
    with atomic(marker, "w") as f:  # a sweep killed while writing its marker could not resume
        f.write(json.dumps({"run_id": run.info.run_id, "fingerprint": fingerprint(cfg),
                            "tracking_uri": mlflow.get_tracking_uri()}))
    return run.info.run_id


def search(tuner, cfg: Config, splits: Splits) -> None:
    """Run the trials here or, as the chief, serve them to workers until all have ended."""
    if cfg.distributed.role != "chief":
        tuner.search(splits, verbose=0)
        return
    tuner.oracle.verbose = 0  # the chief prints its own lines
    tuner.save()
    info = {"parent_run_id": tuner.parent_id, "fingerprint": fingerprint(cfg), "tracking_uri": mlflow.get_tracking_uri()}
    Chief(tuner.oracle, cfg.distributed, info).serve()
    close_interrupted(MlflowClient(), mlflow.get_run(tuner.parent_id))  # a worker that vanished at the very end


def sweep(cfg: Config) -> int:
    """The sweep, its state locked from before keras-tuner may delete it until the end. A
    worker's state is <name>-workers/<tuner_id>, not the chief's: it takes no lock."""
    if worker_count(cfg):
        return launch(cfg, sys.argv[1:])
    with nullcontext() if cfg.distributed.role == "worker" else locked(Path(cfg.sweep.dir), cfg.sweep.name):
        return sweep_here(cfg)


def sweep_here(cfg: Config) -> int:
    """Data, parent run, search (or the worker's part of it) and closing, in this process."""
    if cfg.distributed.role == "chief":  # before anything is loaded, opened or marked KILLED
        check_port(cfg.distributed.address)
    start = time.perf_counter()
    limit_threads(cfg.distributed.threads)
    seed_everything(cfg.seed)
    splits = photo_data(cfg) if cfg.photos else load_splits(cfg.data.dir, cfg.data.val_fraction, cfg.data.subset,
                                                               cfg.seed)
    use_store(cfg.mlflow)
    if cfg.photos:  # the space, less any start no model in this store answers to
        cfg = usable_space(cfg)
    if cfg.distributed.role != "none":
        interrupt_on_sigterm()
        follow_launcher()
    if cfg.distributed.role == "worker":
        return work(cfg, splits)
    state = Path(cfg.sweep.dir) / cfg.sweep.name
    fresh = cfg.sweep.fresh or not (state / MARKER).exists()
    if not fresh:  # checks the config before keras-tuner reloads a state that does not match
        parent_id = open_parent(cfg, state, fresh=False)
    first = [] if cfg.photos or not fresh else first_trials(cfg.search, known_configs(cfg))
    tuner = make_tuner(cfg, cfg.sweep.dir, overwrite=fresh, first=first)
    if fresh:  # after keras-tuner has cleared the old state, marker included
        parent_id = open_parent(cfg, state, fresh=True)
    tuner.parent_id = parent_id
    with mlflow.start_run(run_id=parent_id) as parent:
        try:
            killed = close_interrupted(MlflowClient(), parent)
            print(f"sweep {cfg.sweep.name!r} ({cfg.tuner.kind}): {'resumed' if not fresh else 'new'}, parent run "
                  f"{parent_id}" + (f"; {killed} interrupted trial run(s) marked KILLED" if killed else ""), flush=True)
            search(tuner, cfg, splits)
            close = finalize_photos if cfg.photos else lambda *a: finalize(tuner, *a)
            best = close(cfg, mlflow.get_run(parent_id), splits)
            minutes = (time.perf_counter() - start) / 60
            mlflow.log_metric("sweep_minutes", minutes)
        except KeyboardInterrupt:  # inside the `with`, which would end the parent FAILED: it is resumable
            while mlflow.active_run():
                mlflow.end_run("KILLED")
            print(f"\ninterrupted: rerun the same command to resume sweep {cfg.sweep.name!r}", file=sys.stderr)
            return 130
    report(best, cfg, parent_id, minutes)
    return 0




