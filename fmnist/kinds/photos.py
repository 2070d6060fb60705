"""The photo sweep (`python -m fmnist.sweep experiment=finetune photos=DIR`): keras-tuner
searching how to fine-tune on a user's labelled photos, the winner registered as a version of
`finetune.registered_model`.

Its space (conf/search/finetune.yaml) is read like any other (fmnist.search.space); `when:`
there keeps which layers train to trials that start from Fashion-MNIST weights. Each trial is
one fine-tuning run, logged as `fmnist.finetune` logs one (fmnist/photos/finetuning.py).
"""

from __future__ import annotations

import sys
from typing import Any

import keras
import keras_tuner as kt
import mlflow
import yaml

from fmnist.config import SIZE, Config, input_side
from fmnist.errors import ConfigError, NoModelError
from fmnist.photos.finetuning import fit_and_log, holder_score, load_base, photo_data, photo_tags
from fmnist.photos.photoset import PhotoData
from fmnist.photos.transfer import network
from fmnist.search.kind import Registration, SweepKind
from fmnist.search.registry import HolderScore
from fmnist.search.tuning import ConfigHyperModel
from fmnist.serving.loading import load_classifier


class PhotoHyperModel(ConfigHyperModel):
    """build: the trial's network (a copy of its Fashion-MNIST start, or from scratch);
    fit: fine-tune it, logging to the trial's child run like `fmnist.finetune` does, for the
    trial's epochs or, given `epochs` (promotion, the retrain), that many."""

    def __init__(self, cfg: Config, classes: int, minutes: float = 0, pruned: bool = False) -> None:
        super().__init__(cfg, name="fmnist_photos", program="finetune", minutes=minutes, pruned=pruned)
        self.classes = classes
        self.bases: dict[str, keras.Model | None] = {}  # loaded once; each trial starts from a copy

    def implied(self, tree: dict[str, Any]) -> None:
        """A trial that starts from Fashion-MNIST weights takes their input: the 28x28 fmnist look."""
        if tree["finetune"]["base"] != "none":
            tree["photo"].update(input="fmnist", size=SIZE)

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        trial = self.configure(hp)
        if trial is None:
            return None
        if trial.finetune.base not in self.bases:
            self.bases[trial.finetune.base] = load_base(trial)
        return network(trial, self.classes, self.bases[trial.finetune.base])

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


def logged_config(run_id: str) -> Config:
    """The config a run trained with, as it logged it (config.yaml)."""
    raw = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml"))
    return Config.model_validate(raw, context=input_side(raw))


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
        classes, the photos and the Fashion-MNIST start it came from."""
        model_uri = mlflow.get_run(run_id).data.tags["model_uri"]
        return Registration(model_uri, tags=photo_tags(logged_config(run_id), data))

    def score(self, best: dict[str, Any], cfg: Config) -> str:
        return f"validation accuracy {best['val_accuracy']:.4f} on {cfg.validation or 'a split of ' + cfg.photos}"
