"""The photo sweep: keras-tuner searching how to fine-tune on a user's photos.

Its space (fmnist/conf/search/finetune.yaml) is read like any other (fmnist.search.space);
`when:` there keeps which layers train to trials that start from Fashion-MNIST weights.
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

from fmnist.config import Config, input_side
from fmnist.errors import ConfigError, NoModelError
from fmnist.photos.finetuning import fit_and_log, load_base, register_photo_model
from fmnist.photos.photoset import PhotoData
from fmnist.photos.serving import load_classifier
from fmnist.photos.transfer import network
from fmnist.search.registry import rank_trials
from fmnist.search.tuning import ConfigHyperModel, log_trial
from fmnist.training.callbacks import Pace


class PhotoHyperModel(ConfigHyperModel):
    """build: the trial's network (a copy of its Fashion-MNIST start, or from scratch);
    fit: fine-tune it, logging to the trial's child run like `fmnist.finetune` does."""

    def __init__(self, cfg: Config, classes: int, minutes: float = 0) -> None:
        super().__init__(cfg, name="fmnist_photos")
        self.classes, self.minutes = classes, minutes
        self.bases: dict[str, keras.Model | None] = {}  # loaded once; each trial starts from a copy

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        trial = self.configure(hp)
        if trial is None:
            return None
        if trial.finetune.base not in self.bases:
            self.bases[trial.finetune.base] = load_base(trial)
        return network(trial, self.classes, self.bases[trial.finetune.base])

    def fit(self, hp: kt.HyperParameters, model: keras.Model, data: PhotoData, callbacks=None, **kwargs: Any):
        trial = self.trial
        pace = Pace(self.minutes, trial.trainer.epochs) if self.minutes else None

        def check(history: dict[str, list[float]]) -> None:
            if pace and pace.projected:
                raise kt.errors.FailedTrialError(f"too slow: {pace.projected / 60:.1f} min projected, "
                                                 f"over sweep.trial_minutes={self.minutes:g}")
            if not all(math.isfinite(v) for v in history.get("loss", [])):
                raise kt.errors.FailedTrialError("loss diverged (not finite)")

        log_trial(hp, trial)
        summary, _ = fit_and_log(trial, data, model, [keras.callbacks.TerminateOnNaN(), *filter(None, [pace])], check)
        return {"val_accuracy": summary["val_accuracy"]}


def usable_space(cfg: Config) -> Config:
    """The config with `finetune.base` choices that name no model dropped, saying so: on a
    machine where no Fashion-MNIST sweep has run, the photo sweep starts from scratch only."""
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
    _, best, done = rank_trials(parent, cfg.selection.max_gap, cfg.report.enabled)
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
    mlflow.set_tag("best_trial_id", best["trial_id"])  # `registered_version`: set as the version was registered
    return {**best, **source, "version": version, "moved": moved, "holder_val_accuracy": held}


def retrain(cfg: Config, trial: Config, best: dict[str, Any], data: PhotoData) -> dict[str, Any]:
    """The best trial's settings trained for `selection.retrain_epochs` (fewer if that would
    take longer than `retrain_minutes` at the trial's pace), as a child run "final"."""
    epochs = cfg.selection.epochs_at(mlflow.get_run(best["run_id"]).data.metrics.get("epoch_seconds"))
    longer = trial.model_copy(update={"trainer": trial.trainer.model_copy(update={"epochs": epochs})})
    print(f"retraining trial {best['trial_id']}'s settings for {epochs} epochs", flush=True)
    with mlflow.start_run(run_name=f"final-{best['trial_id']}", nested=True,
                          tags={"role": "final", "trial_id_source": best["trial_id"]}) as run:
        mlflow.log_dict(longer.model_dump(), "config.yaml")
        keras.utils.set_random_seed(cfg.seed)
        summary, uri = fit_and_log(longer, data, network(longer, len(data.classes), load_base(longer)), [])
    print(f"retrained: val {summary['val_accuracy']:.4f} (trial {best['val_accuracy']:.4f})", flush=True)
    return {**summary, "run_id": run.info.run_id, "model_uri": uri}
