"""The photo sweep: keras-tuner searching how to fine-tune on a user's photos.

Its space names config paths (`finetune.base`, `model.learning_rate`): a trial's config is
the base config with those paths set, validated once, and its params carry the same names,
so any trial is rerun by `python -m fmnist.finetune` with them as overrides. `when:` limits
an entry to trials where an earlier entry took given values (which layers train only for
a start from Fashion-MNIST weights).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import keras
import keras_tuner as kt
import mlflow
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from fmnist.callbacks import Pace
from fmnist.config import Config, ConfigError, SearchParam, check_paths, input_side
from fmnist.photorun import fit_and_log, load_base, register_photo_model
from fmnist.photoset import PhotoData
from fmnist.preprocess import SIZE
from fmnist.registry import best_eligible, publish_leaderboard
from fmnist.reports import log_sweep_reports
from fmnist.serving import NoModelError, load_classifier
from fmnist.space import declare
from fmnist.transfer import network


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree[part]
    tree[leaf] = value


def trial_values(hp: kt.HyperParameters, space: dict[str, SearchParam]) -> dict[str, Any]:
    """Each entry's value in this trial; entries whose `when` does not hold are left out."""
    values = {}
    for path, p in space.items():
        if not p.when:
            values[path] = declare(hp, path, p)
            continue
        (parent, allowed), = p.when.items()
        with hp.conditional_scope(parent, allowed):
            value = declare(hp, path, p)
        if value is not None:  # keras-tuner answers None in a scope whose condition does not hold
            values[path] = value
    return values


def trial_config(hp: kt.HyperParameters, cfg: Config) -> Config:
    """The base config with this trial's values at their paths, validated once. A trial that
    starts from Fashion-MNIST weights takes their input, the 28x28 fmnist look, whatever
    input the base config gives the trials from scratch."""
    raw = cfg.model_dump()
    for path, value in trial_values(hp, cfg.search).items():
        set_path(raw, path, value)
    if raw["finetune"]["base"] != "none":
        raw["photo"].update(input="fmnist", size=SIZE)
    try:
        return Config.model_validate(raw, context=input_side(raw))
    except ValidationError as e:
        raise kt.errors.FailedTrialError(f"invalid config: {e.errors()[0]['msg'].removeprefix('Value error, ')}")


class PhotoHyperModel(kt.HyperModel):
    """build: the trial's network (a copy of its Fashion-MNIST start, or from scratch);
    fit: fine-tune it, logging to the trial's child run like `fmnist.finetune` does."""

    def __init__(self, cfg: Config, classes: int, minutes: float = 0) -> None:
        super().__init__(name="fmnist_photos")
        self.cfg, self.classes, self.minutes = cfg, classes, minutes
        self.trial: Config | None = None
        self.bases: dict[str, keras.Model | None] = {}  # loaded once; each trial starts from a copy

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        self.trial = trial_config(hp, self.cfg)
        ref = self.trial.finetune.base
        if ref not in self.bases:
            self.bases[ref] = load_base(self.trial)
        return network(self.trial, self.classes, self.bases[ref])

    def fit(self, hp: kt.HyperParameters, model: keras.Model, data: PhotoData, callbacks=None, **kwargs: Any):
        trial = self.trial
        pace = Pace(self.minutes, trial.trainer.epochs) if self.minutes else None

        def check(history: dict[str, list[float]]) -> None:
            if pace and pace.projected:
                raise kt.errors.FailedTrialError(f"too slow: {pace.projected / 60:.1f} min projected, "
                                                 f"over sweep.trial_minutes={self.minutes:g}")
            if any(math.isnan(v) for v in history.get("loss", [])):
                raise kt.errors.FailedTrialError("loss diverged (NaN)")

        mlflow.log_dict(trial.model_dump(exclude={"search", "hydra"}), "config.yaml")
        summary, _ = fit_and_log(trial, data, model, [keras.callbacks.TerminateOnNaN(), *filter(None, [pace])], check)
        return {"val_accuracy": summary["val_accuracy"]}


def usable_space(cfg: Config) -> Config:
    """The config with `finetune.base` choices that name no model dropped, saying so: on a
    machine where no Fashion-MNIST sweep has run, the photo sweep starts from scratch only."""
    check_paths(cfg)
    p = cfg.search.get("finetune.base")
    if p is None or p.type != "choice":
        return cfg
    usable = [v for v in p.values if v == "none" or loads(str(v), cfg)]
    if not usable:
        raise ConfigError(f"search.finetune.base: none of {p.values} can be loaded")
    if usable == p.values:
        return cfg
    print(f"note: search.finetune.base: {', '.join(str(v) for v in p.values if v not in usable)} not found in "
          f"{mlflow.get_tracking_uri()}; trials start from {', '.join(map(str, usable))} only", file=sys.stderr)
    search = {path: p.model_copy(update={"values": usable}) if path == "finetune.base" else e  # order kept
              for path, e in cfg.search.items()  # entries only for the dropped starts go too
              if not e.when or set(e.when.get("finetune.base", usable)) & set(usable)}
    return cfg.model_copy(update={"search": search})


def loads(ref: str, cfg: Config) -> bool:
    try:
        load_classifier(ref, cfg.mlflow.registered_model)
        return True
    except NoModelError:
        return False


def finalize_photos(cfg: Config, parent: Run, data: PhotoData) -> dict[str, Any] | None:
    """Leaderboard, then the best trial within `selection.max_gap` (retrained longer first
    when `selection.retrain_epochs` asks, the better of the two kept) registered as a version
    of `finetune.registered_model`, its alias moved only if it beats the holder on the same
    validation photos. Idempotent on resume."""
    rows = publish_leaderboard(MlflowClient(), parent)
    if cfg.report.enabled:
        log_sweep_reports(sorted(rows, key=lambda r: int(r["trial_id"])))
    done, best = parent.data.tags.get("registered_version"), best_eligible(rows, cfg.selection.max_gap)
    if done or best is None:
        return best and {**best, "version": done, "moved": None}
    raw = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{best['run_id']}/config.yaml"))
    trial = Config.model_validate(raw, context=input_side(raw))
    source = {**best, "model_uri": mlflow.get_run(best["run_id"]).data.tags["model_uri"]}
    if cfg.selection.retrain_epochs:
        longer = retrain(cfg, trial, best, data)
        if longer["overfit_gap"] <= cfg.selection.max_gap:  # as for Fashion-MNIST: no model that overfits
            source = max(source, longer, key=lambda r: r["val_accuracy"])
    version, moved, held = register_photo_model(source["run_id"], source["model_uri"], trial, data,
                                                source["val_accuracy"])
    mlflow.log_metrics({"best_val_accuracy": source["val_accuracy"], "best_overfit_gap": source["overfit_gap"]})
    mlflow.set_tags({"best_trial_id": best["trial_id"], "registered_version": version})
    return {**best, **source, "version": version, "moved": moved, "holder_val_accuracy": held}


def retrain(cfg: Config, trial: Config, best: dict[str, Any], data: PhotoData) -> dict[str, Any]:
    """The best trial's settings trained for `selection.retrain_epochs` (fewer if that would
    take longer than `retrain_minutes` at the trial's pace), as a child run "final"."""
    epochs = cfg.selection.epochs_at(mlflow.get_run(best["run_id"]).data.metrics.get("epoch_seconds"))
    longer = trial.model_copy(update={"trainer": trial.trainer.model_copy(update={"epochs": epochs})})
    print(f"retraining trial {best['trial_id']}'s settings for {epochs} epochs", flush=True)
    with mlflow.start_run(run_name=f"final-{best['trial_id']}", nested=True,
                          tags={"role": "final", "trial_id_source": best["trial_id"]}) as run:
        mlflow.log_dict(longer.model_dump(exclude={"search", "hydra"}), "config.yaml")
        keras.utils.set_random_seed(cfg.seed)
        summary, uri = fit_and_log(longer, data, network(longer, len(data.classes), load_base(longer)), [])
    print(f"retrained: val {summary['val_accuracy']:.4f} (trial {best['val_accuracy']:.4f})", flush=True)
    return {**summary, "run_id": run.info.run_id, "model_uri": uri}
