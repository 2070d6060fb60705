"""The photo sweep (`python -m fmnist.sweep experiment=finetune photos=DIR`): keras-tuner
searching how to fine-tune on a user's labelled photos, the winner registered as a version of
`finetune.registered_model`.

Its space (conf/search/finetune.yaml) is read like any other (fmnist.search.space); `when:`
there keeps which layers train to trials that start from Fashion-MNIST weights. Each trial is
one fine-tuning run, logged as `fmnist.finetune` logs one (fmnist/photos/finetuning.py).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import keras
import keras_tuner as kt
import mlflow
import numpy as np
import yaml

from fmnist.config import SIZE, Config, input_side
from fmnist.config.photos import IMAGENET
from fmnist.errors import ConfigError, NoModelError
from fmnist.photos.finetuning import (
    calibrate_on_selection,
    fit_and_log,
    holder_score,
    load_base,
    photo_data,
    photo_tags,
)
from fmnist.photos.imagenet import backbone
from fmnist.photos.photoset import PhotoData
from fmnist.photos.transfer import network
from fmnist.search.kind import Registration, SweepKind
from fmnist.search.registry import HolderScore
from fmnist.search.tuning import ConfigHyperModel
from fmnist.serving.classifier import log_photo_model, probabilities
from fmnist.serving.loading import Classifier, load_classifier
from fmnist.training.ensemble import averaged
from fmnist.training.fitting import accuracy


class PhotoHyperModel(ConfigHyperModel):
    """build: the trial's network (a copy of its Fashion-MNIST start, or from scratch);
    fit: fine-tune it, logging to the trial's child run like `fmnist.finetune` does, for the
    trial's epochs or, given `epochs` (promotion, the retrain), that many."""

    def __init__(self, cfg: Config, classes: int, minutes: float = 0, pruned: bool = False) -> None:
        super().__init__(cfg, name="fmnist_photos", program="finetune", minutes=minutes, pruned=pruned)
        self.classes = classes
        self.bases: dict[str, keras.Model | None] = {}  # loaded once; each trial starts from a copy

    def implied(self, tree: dict[str, Any]) -> None:
        """A trial that starts from Fashion-MNIST weights takes their input: the 28x28 fmnist
        look. One from scratch or from an ImageNet network (`imagenet:NAME`, RGB at any side it
        can pool) takes the experiment's photos."""
        base = str(tree["finetune"]["base"])
        if base != "none" and not base.startswith(IMAGENET):
            tree["photo"].update(input="fmnist", size=SIZE)

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        trial = self.configure(hp)
        if trial is None:
            return None
        key = f"{trial.finetune.base} {trial.photo.shape}"  # an ImageNet backbone is built for its input
        if key not in self.bases:
            self.bases[key] = load_base(trial)
        return network(trial, self.classes, self.bases[key])

    def fit(self, hp: kt.HyperParameters, model: keras.Model, data: PhotoData, callbacks=None, **kwargs: Any):
        trial = self.trial
        if "epochs" in kwargs:  # the config.yaml the run logs says how long it trained
            trial = trial.model_copy(update={"trainer": trial.trainer.model_copy(update={"epochs": kwargs["epochs"]})})
        rungs_at = self.cfg.pruner.rung_steps if self.pruned and "epochs" not in kwargs else None
        pace = self.pace(trial.trainer.epochs, rungs=rungs_at)
        a = data.arrays(trial.photo) if rungs_at else None  # prepared once: fit_and_log takes the same
        rungs = self.rungs(a.x_val, a.y_val, pace, a.x_train[:256]) if a else None
        self.log_trial(hp, trial)
        summary, _ = fit_and_log(trial, data, model, [*filter(None, [rungs, keras.callbacks.TerminateOnNaN(), pace])],
                                 lambda history: self.check(history.get("loss", []), pace),
                                 lambda epochs, seconds: self.stopped_early(rungs, epochs, seconds))
        if rungs and not self.outcome:
            mlflow.log_metric("rung", rungs.reached)
        return {"val_accuracy": summary["val_accuracy"]}


def usable_space(cfg: Config) -> Config:
    """The config with the `finetune.base` choices it cannot start from dropped, saying so: on
    a machine where no Fashion-MNIST sweep has run, the photo sweep starts from scratch only;
    on one without the internet, not from an ImageNet network whose weights are not cached."""
    p = cfg.search.get("finetune.base")
    if p is None or p.type != "choice":
        return cfg
    problems = {str(v): why for v in p.values if (why := unusable(str(v), cfg))}
    usable = [v for v in p.values if str(v) not in problems]
    if not usable:
        raise ConfigError(f"search.finetune.base: none of {p.values} can be loaded: {'; '.join(problems.values())}")
    if usable == p.values:
        return cfg
    print(f"note: search.finetune.base: {'; '.join(problems.values())}; trials start from "
          f"{', '.join(map(str, usable))} only", file=sys.stderr)
    search = {path: p.model_copy(update={"values": usable}) if path == "finetune.base" else e  # order kept
              for path, e in cfg.search.items()  # entries only for the dropped starts go too
              if not e.when or set(e.when.get("finetune.base", usable)) & set(usable)}
    return cfg.model_copy(update={"search": search})


def unusable(ref: str, cfg: Config) -> str | None:
    """Why a trial cannot start from `ref`, or None. An ImageNet network is usable where its
    weights are cached or can be downloaded (that download is its first use), on RGB photos
    of a side it takes: it is built once here to know."""
    if ref == "none":
        return None
    if not ref.startswith(IMAGENET):
        return None if loads(ref, cfg) else f"{ref} not found in {mlflow.get_tracking_uri()}"
    if cfg.photo.input == "fmnist":
        return f"{ref} takes RGB photos, not photo.input=fmnist"
    try:
        backbone(ref.removeprefix(IMAGENET), cfg.photo.shape)
    except (ConfigError, NoModelError) as e:
        return str(e)
    return None


def loads(ref: str, cfg: Config) -> bool:
    try:
        load_classifier(ref, cfg.mlflow.registered_model)
        return True
    except NoModelError:
        return False


def logged_config(run_id: str) -> Config:
    """The config a run trained with, as it logged it (config.yaml)."""
    raw = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    return Config.model_validate(raw, context=input_side(raw))


def same_steps(members: list[tuple[str, Classifier]]) -> list[tuple[str, Classifier]]:
    """The members whose model prepares photos as the winner's (the first) does, saying which
    are left out: one ensemble takes one input, each photo prepared once."""
    steps = members[0][1].photo
    kept = [(run, c) for run, c in members if c.photo == steps]
    if len(kept) < len(members):
        print(f"ensemble: {len(members) - len(kept)} of {len(members)} models prepare photos otherwise than the "
              f"winner (photo.input={steps.input} photo.size={steps.size}); averaging the {len(kept)} that match",
              flush=True)
    return kept


def seconds_per_photo(model: keras.Model, x: np.ndarray) -> float:
    """What answering costs per photo once the model is warm (the photo steps aside), as the
    served model computes it (`probabilities`): the first call, which traces, is left out."""
    probabilities(model, x[:1])
    start = time.perf_counter()
    probabilities(model, x)
    return (time.perf_counter() - start) / max(1, len(x))


def log_ensemble(cfg: Config, members: list[tuple[str, Classifier]], data: PhotoData) -> str:
    """The members' average as a child run `ensemble` of the sweep's parent, logged as every
    photo run is (summary metrics on the same splits, the winner's config.yaml, the model as a
    PhotoClassifier with the classes and photo steps, its `model_uri` tag), with what it costs
    per photo beside the winner alone; returns the run id."""
    steps, ids = members[0][1].photo, [run for run, _ in members]
    a = data.arrays(steps)
    model = averaged([c.model for _, c in members])
    with mlflow.start_run(run_name="ensemble", nested=True, tags={"role": "ensemble", "members": ",".join(ids)}) as run:
        probs = probabilities(model, a.x_val)
        if cfg.finetune.calibrate:  # as a single photo run is: T fitted on the selection split; argmax unchanged
            model, probs, _ = calibrate_on_selection(model, a.x_val, a.y_val, probs)
        train, val = accuracy(model, a.x_train, a.y_train), float(np.mean(probs.argmax(1) == a.y_val))
        mlflow.log_metrics({"train_accuracy": train, "val_accuracy": val, "overfit_gap": train - val,
                            "members": len(ids), "seconds_per_photo": seconds_per_photo(model, a.x_val),
                            "member_seconds_per_photo": seconds_per_photo(members[0][1].model, a.x_val)})
        mlflow.log_text(mlflow.artifacts.load_text(f"runs:/{ids[0]}/config.yaml"), "config.yaml")
        mlflow.set_tag("model_uri", log_photo_model(model, photo=steps, classes=data.classes))
        return run.info.run_id


class PhotoKind(SweepKind):
    """A user's labelled photos: there is no test set. The photos are few, and every one held
    out of training is one fewer to learn from; the validation photos (a split of `photos`,
    or `validation`) are the check, and the closing table says so."""

    def __init__(self) -> None:
        super().__init__("photos", test_set=False)

    def data(self, cfg: Config) -> PhotoData:
        return photo_data(cfg)

    def usable(self, cfg: Config) -> Config:
        """The space less the Fashion-MNIST starts no model in this store answers to (`usable_space`)."""
        return usable_space(cfg)

    def hypermodel(self, cfg: Config, data: PhotoData, minutes: float) -> PhotoHyperModel:
        return PhotoHyperModel(cfg, len(data.classes), minutes, pruned=True)

    def longer(self, cfg: Config, data: PhotoData) -> PhotoHyperModel:
        """No epoch is kept back, as a Fashion-MNIST run keeps its best within the gap: the
        photo network trains in stages (the new classifier warms up alone first), and its last
        epoch is the model the run logs; the closing checks that run's gap as a whole."""
        return PhotoHyperModel(cfg, len(data.classes))

    def registered_model(self, cfg: Config) -> str:
        return cfg.finetune.registered_model

    def holder_score(self, cfg: Config, data: PhotoData) -> HolderScore:
        return holder_score(cfg, data)

    def registration(self, cfg: Config, run_id: str, data: PhotoData) -> Registration:
        """Every photo run logs its model as a PhotoClassifier already (the user's classes and
        the photo steps it trained with): that model is registered as it is, tagged with the
        classes, the photos and the Fashion-MNIST start it came from (an ensemble: the winner's),
        and for an ensemble the runs it averages."""
        tags = mlflow.get_run(run_id).data.tags
        members = {"members": tags["members"]} if "members" in tags else {}
        return Registration(tags["model_uri"], tags={**photo_tags(logged_config(run_id), data), **members})

    def ensemble(self, cfg: Config, run_ids: list[str], data: PhotoData) -> str | None:
        """The logged models of `run_ids` (the winner first) that take the winner's photo steps,
        averaged and logged as child run `ensemble` (`log_ensemble`); None when only the winner
        is left."""
        members = same_steps([(run, load_classifier(mlflow.get_run(run).data.tags["model_uri"],
                                                    cfg.mlflow.registered_model)) for run in run_ids])
        if len(members) < 2:
            print("ensemble: no other model takes the winner's photo steps; registering the winner alone", flush=True)
            return None
        return log_ensemble(cfg, members, data)

    def score(self, best: dict[str, Any], cfg: Config) -> str:
        return f"validation accuracy {best['val_accuracy']:.4f} on {cfg.validation or 'a split of ' + cfg.photos}"
