"""`distributed.role=worker`: run the trials a chief hands out, as child runs of its parent
run, and stop when the chief stops, drops this worker, refuses it, serves another sweep or
goes silent."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import grpc
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.config import Config
from fmnist.errors import EXIT_FAILED, ConfigError, DistributedError
from fmnist.search import ktapi
from fmnist.search.distributed import Heartbeat, default_tuner_id, ignore_signals, worker_env
from fmnist.search.fingerprint import fingerprint
from fmnist.search.state import claim, clear
from fmnist.search.tuning import ConfigHyperModel, make_tuner


def check_chief(cfg: Config, info: dict[str, str]) -> None:
    """A worker must run the chief's sweep and log where the chief's parent run is."""
    if info["fingerprint"] != fingerprint(cfg):
        raise ConfigError("distributed: the chief's sweep has another config (seed, data, model, trainer, search or "
                          "tuner); start the worker with the chief's overrides")
    try:
        MlflowClient().get_run(info["parent_run_id"])
    except MlflowException:
        raise ConfigError(f"mlflow: the tracking store {mlflow.get_tracking_uri()} lacks the chief's parent run; "
                          f"the chief logs to {info['tracking_uri']}: set MLFLOW_TRACKING_URI to that") from None


def end_by_chief(cfg: Config, tuner_id: str, run_id: str | None, state: str) -> None:
    """Heartbeat thread: the chief stopped, dropped this worker (its trial went to another), now
    serves another sweep, or went silent. The trial's run ends KILLED (a half-logged run is never
    FINISHED); the process exits now."""
    if run_id:
        MlflowClient().set_terminated(run_id, "KILLED")
    why = {"stop": "the chief stopped the sweep", "evicted": "the chief dropped this worker as silent",
           "moved": f"another chief (another sweep or token) now answers at {cfg.distributed.address}",
           "lost": f"the chief has not answered for {cfg.distributed.timeout:g} s"}[state]
    print(f"{tuner_id}: {why}; exiting", flush=True)
    os._exit(0 if state == "stop" else EXIT_FAILED)


def end_runs() -> None:
    """End this process's open trial runs KILLED: a run whose trial did not end here is never FINISHED."""
    while mlflow.active_run():
        mlflow.end_run("KILLED")


def own_state(cfg: Config, tuner_id: str) -> Path:
    """This worker's state folder, <sweep.dir>/<sweep.name>-workers/<tuner_id>, claimed and cleared
    of what an earlier process of the id wrote: only its own files (fmnist/search/state.py), never
    the folder whole, as keras-tuner's overwrite would."""
    folder = Path(cfg.sweep.dir) / f"{cfg.sweep.name}-workers" / tuner_id
    claim(folder, f"distributed.tuner_id={tuner_id!r}", cfg.sweep.fresh)
    clear(folder, tuner_id)
    return folder


def work(cfg: Config, hypermodel: ConfigHyperModel, data: Any) -> int:
    """role=worker: run the trials the chief hands out (`hypermodel`'s, on `data`: the sweep's
    kind made both), as child runs of its parent run."""
    tuner_id, tuner = cfg.distributed.tuner_id or default_tuner_id(), None
    folder = own_state(cfg, tuner_id)  # before joining: a worker turned away here never held a trial
    beat = Heartbeat(cfg.distributed, tuner_id,
                     on_end=lambda state: end_by_chief(cfg, tuner_id, tuner and tuner.run_id, state))
    info = beat.join_chief()
    beat.start()  # from here on the chief hears this worker, however long the set-up below takes
    check_chief(cfg, info)
    worker_env(cfg.distributed, tuner_id)
    tuner = make_tuner(cfg, hypermodel, info["parent_run_id"], str(folder.parent), project=tuner_id)
    ktapi.use_channel(tuner.oracle, beat.channel)  # its calls carry the token and this process's identity
    print(f"{tuner_id}: joined the chief at {cfg.distributed.address}; parent run {info['parent_run_id']}", flush=True)
    try:
        tuner.search(data, verbose=0)
    except KeyboardInterrupt:
        ignore_signals()
        end_runs()
        beat.leave()
        print(f"\n{tuner_id}: interrupted; its trial goes to another worker", file=sys.stderr)
        return 130
    except grpc.RpcError as e:  # e.g. its trial went to another worker while this one was cut off
        end_runs()
        raise DistributedError(f"{tuner_id}: the chief refused a call ({e.details()}); exiting") from None
    print(f"{tuner_id}: the chief has no trials left; done", flush=True)
    return 0
