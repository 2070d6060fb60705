"""`python -m fmnist.sweep [experiment=NAME] [key=value ...]`: the product's main job.

A keras-tuner search over the space in `conf/search/`, one MLflow parent run per sweep and
one nested child run per trial; the best trial that does not overfit is registered as a
new version of the registered model, and the `best` alias moves to it if it beats the
current holder. Rerunning the same command resumes an interrupted sweep.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import keras
import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist import cli
from fmnist.cluster import follow_launcher, launch, limit_threads
from fmnist.config import Config, ConfigError
from fmnist.data import Splits, load_splits
from fmnist.distributed import (
    Chief, Heartbeat, default_tuner_id, ignore_signals, interrupt_on_sigterm, worker_env,
)
from fmnist.model import CUSTOM_OBJECTS
from fmnist.reports import log_run_reports, log_sweep_reports
from fmnist.reports.predict import predict
from fmnist.reports.source import load_history
from fmnist.serving import log_photo_model
from fmnist.reports.sweep import typed
from fmnist.registry import best_eligible, close_interrupted, leaderboard, publish_leaderboard, register
from fmnist.tracking import flatten, run_tags, use_store
from fmnist.train import seed_everything
from fmnist.photorun import photo_data
from fmnist.photosearch import finalize_photos, usable_space
from fmnist.tuning import SpaceHyperModel, format_hp, make_tuner

MARKER = "mlflow_parent_run.json"


def fingerprint(cfg: Config) -> str:
    """What a resumed sweep must share with the one it continues."""
    keys = ("seed", "data", "model", "trainer", "search", "tuner", "photos", "validation", "photo", "finetune")
    return hashlib.sha256(json.dumps(cfg.model_dump(include=set(keys)), sort_keys=True).encode()).hexdigest()[:16]


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
    marker.write_text(json.dumps({"run_id": run.info.run_id, "fingerprint": fingerprint(cfg),
                                  "tracking_uri": mlflow.get_tracking_uri()}))
    return run.info.run_id


def retrain(tuner, cfg: Config, trial_id: str, run_id: str, splits: Splits) -> str:
    """Train the winning hyperparameters for `selection.retrain_epochs` as a child run
    "final": short trials find the settings, one longer run (the trainer's LR schedule
    stretched over it) gets what they are worth. Its model is the epoch with the best
    validation accuracy within `selection.max_gap`."""
    hp = tuner.oracle.get_trial(trial_id).hyperparameters
    epochs = cfg.selection.epochs_at(mlflow.get_run(run_id).data.metrics.get("epoch_seconds"))
    with mlflow.start_run(run_name=f"final-{trial_id}", nested=True, tags={"role": "final", "trial_id_source": trial_id}):
        mlflow.log_params(hp.values)
        print(f"retraining trial {trial_id}'s settings for {epochs} epochs", flush=True)
        keras.utils.set_random_seed(cfg.seed)
        hypermodel = SpaceHyperModel(cfg, max_gap=cfg.selection.max_gap)
        hypermodel.fit(hp, hypermodel.build(hp), splits, epochs=epochs)
        return mlflow.active_run().info.run_id


def finalize(tuner, cfg: Config, parent: Run, splits: Splits) -> dict[str, Any] | None:
    """Leaderboard, winner, one test evaluation, registration. Idempotent on resume."""
    client = MlflowClient()
    rows = publish_leaderboard(client, parent)
    if cfg.report.enabled:
        log_sweep_reports(sorted(rows, key=lambda r: int(r["trial_id"])))
    done = parent.data.tags.get("registered_version")
    best = best_eligible(rows, cfg.selection.max_gap)
    if done or best is None:
        return best and {**best, "version": done, "moved": None}
    source = best["run_id"]
    if cfg.selection.retrain_epochs:
        retrained = retrain(tuner, cfg, best["trial_id"], best["run_id"], splits)
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
    log_run_reports(model, splits, load_history(client, source), cfg.report, test, run_id=source)
    mlflow.log_metrics({f"best_{k}": v for k, v in metrics.items()})
    mlflow.set_tag("best_trial_id", best["trial_id"])
    uri = log_photo_model(model, name="best_model")  # takes photos: serving and fmnist.predict
    hparams = {k: v for k, v in best.items() if k.startswith("hp.")}
    version, moved = register(uri, cfg.mlflow.registered_model, cfg.selection.alias,
                              {**metrics, **hparams, "sweep": cfg.sweep.name, "trial_id": best["trial_id"],
                               "source_run": source})
    mlflow.set_tag("registered_version", version)
    return {**best, **metrics, "version": version, "moved": moved}


def report(rows_best: dict[str, Any] | None, cfg: Config, parent_id: str, minutes: float) -> None:
    """The closing table: top trials and where the registered model is."""
    rows = leaderboard(MlflowClient(), mlflow.get_run(parent_id))
    print(f"\nsweep {cfg.sweep.name!r}: {len(rows)} trials (parent run {parent_id})")
    test = not cfg.photos  # photos have no test set: the validation photos are the check
    print(f"{'trial':>5}  {'status':<9} {'val':>7} {'gap':>7} " + ("   test  " if test else " ") + "hyperparameters")
    for r in rows[:5]:
        hp = format_hp({k[3:]: typed(v) for k, v in r.items() if k.startswith("hp.")})
        shown = f"{r['test_accuracy']:7.4f}  " if test else ""
        print(f"{r['trial_id']:>5}  {r['status']:<9} {r['val_accuracy']:7.4f} {r['overfit_gap']:+7.4f} {shown}{hp}")
    name, alias = (cfg.finetune.registered_model if cfg.photos else cfg.mlflow.registered_model), cfg.selection.alias
    print(f"sweep time: {minutes:.1f} min in all this run (data and photo preparation included)")
    if rows_best is None:
        print(f"no trial has overfit_gap <= {cfg.selection.max_gap}: nothing registered")
        return
    moved = {True: f"alias @{alias} moved to it", False: f"@{alias} stays on a better version",
             None: "registered earlier"}[rows_best["moved"]]
    score = (f"validation accuracy {rows_best['val_accuracy']:.4f} on {cfg.validation or 'a split of ' + cfg.photos}"
             if cfg.photos else f"test accuracy {rows_best.get('test_accuracy', float('nan')):.4f}")
    print(f"best trial {rows_best['trial_id']}: registered models:/{name}/{rows_best['version']} ({moved}); "
          f"{score}; tracking: {mlflow.get_tracking_uri()}")


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
    """Heartbeat thread: the chief stopped, dropped this worker (its trial went to another), or
    went silent. The trial's run ends KILLED (a half-logged run is never FINISHED); the process exits now."""
    if run_id:
        MlflowClient().set_terminated(run_id, "KILLED")
    why = {"stop": "the chief stopped the sweep", "evicted": "the chief dropped this worker as silent",
           "lost": f"the chief has not answered for {cfg.distributed.timeout:g} s"}[state]
    print(f"{tuner_id}: {why}; exiting", flush=True)
    os._exit(0 if state == "stop" else cli.EXIT_FAILED)


def work(cfg: Config, splits: Splits) -> int:
    """role=worker: run the trials the chief hands out, as child runs of its parent run."""
    tuner_id, tuner = cfg.distributed.tuner_id or default_tuner_id(), None
    beat = Heartbeat(cfg.distributed, tuner_id,
                     on_end=lambda state: end_by_chief(cfg, tuner_id, tuner and tuner.run_id, state))
    info = beat.join_chief()
    beat.start()  # from here on the chief hears this worker, however long the set-up below takes
    check_chief(cfg, info)
    worker_env(cfg.distributed, tuner_id)
    tuner = make_tuner(cfg, f"{cfg.sweep.dir}/{cfg.sweep.name}-workers", overwrite=True,
                       parent_id=info["parent_run_id"], project=tuner_id)
    print(f"{tuner_id}: joined the chief at {cfg.distributed.address}; parent run {info['parent_run_id']}", flush=True)
    try:
        tuner.search(splits, verbose=0)
    except KeyboardInterrupt:
        ignore_signals()
        while mlflow.active_run():
            mlflow.end_run("KILLED")
        beat.leave()
        print(f"\n{tuner_id}: interrupted; its trial goes to another worker", file=sys.stderr)
        return 130
    print(f"{tuner_id}: the chief has no trials left; done", flush=True)
    return 0


def sweep(cfg: Config) -> int:
    if cfg.cluster.workers:
        return launch(cfg, sys.argv[1:])
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
    tuner = make_tuner(cfg, cfg.sweep.dir, overwrite=fresh)
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


main = cli.entry("config", Config, sweep)

if __name__ == "__main__":
    main()
