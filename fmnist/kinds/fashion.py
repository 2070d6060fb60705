"""The Fashion-MNIST sweep (`python -m fmnist.sweep`, any experiment without `photos=`): models
built from the space in conf/search/, trained on Fashion-MNIST, the winner tested once on its
10,000 test images and registered as a version of `mlflow.registered_model`."""

from __future__ import annotations

import time
from typing import Any

import keras
import keras_tuner as kt
import mlflow
from mlflow.tracking import MlflowClient

from fmnist.config import Config
from fmnist.config.loading import checked
from fmnist.reports import log_run_reports
from fmnist.reports.predict import predict
from fmnist.reports.source import load_history
from fmnist.search.kind import Registration, SweepKind
from fmnist.search.registry import HolderScore, keras_holder_score
from fmnist.search.seeding import first_trials, registered_config
from fmnist.search.tuning import ConfigHyperModel
from fmnist.serving.classifier import log_photo_model
from fmnist.training.callbacks import BestWithinGap
from fmnist.training.data import Splits, load_splits
from fmnist.training.fitting import fit, log_results, margin, per_epoch
from fmnist.training.model import CUSTOM_OBJECTS, build_model
from fmnist.training.tracking import EpochLogger

GAP_SAMPLE = 5  # the gap's training side on every fifth training image: a trial's, and BestWithinGap's each epoch


class SpaceHyperModel(ConfigHyperModel):
    """Builds a trial's model from its config (the base config with the space's values set);
    `fit` trains it and logs params, the reproducing command, curves, summary metrics,
    reports and the model to the child run. `max_gap` (promotion, the retrain): the best
    epoch within that gap is the one kept."""

    def __init__(self, cfg: Config, minutes: float = 0, max_gap: float | None = None, pruned: bool = False) -> None:
        super().__init__(cfg, name="fmnist_space", program="train", minutes=minutes, pruned=pruned)
        self.max_gap = max_gap
        # t-SNE is most of a report's cost: a sweep draws it for the registered model only.
        self.report = cfg.report.model_copy(update={"embeddings": cfg.report.embeddings and cfg.report.trial_embeddings})

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        trial = self.configure(hp)
        return trial and build_model(trial.model)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, splits: Splits, callbacks=None, **kwargs: Any):
        if self.pruned:
            return self.fit_rungs(hp, model, splits, callbacks)
        trial = self.trial
        epochs, initial = kwargs.get("epochs", trial.trainer.epochs), kwargs.get("initial_epoch", 0)  # Hyperband's
        pace = self.pace(epochs - initial)
        # a fixed, roughly class-balanced sample for the gap
        keep = (BestWithinGap(splits.x_train[::GAP_SAMPLE], splits.y_train[::GAP_SAMPLE], self.max_gap)
                if self.max_gap is not None else None)
        extra = [EpochLogger(mlflow.active_run().info.run_id), keras.callbacks.TerminateOnNaN(), *filter(None, (pace, keep))]
        self.log_trial(hp, trial)
        start = time.perf_counter()
        history = fit(model, splits, trial.trainer, [*(callbacks or []), *extra], epochs=epochs,
                      initial_epoch=initial, aug=trial.model.augment)
        self.check(history.history.get("loss", []), pace)
        # What one epoch of these settings costs: the retrain sizes itself by it.
        timing = {"epoch_seconds": (time.perf_counter() - start) / max(1, len(history.epoch))}
        summary = log_results(model, splits, history, self.report, trial.model.augment, **timing,
                              **({"kept_epoch": keep.kept_epoch + 1} if keep else {}))
        return {"val_accuracy": summary["val_accuracy"]}

    def fit_rungs(self, hp: kt.HyperParameters, model: keras.Model, splits: Splits, callbacks=None):
        """A trial through the pruner's rungs: trained in Keras epochs of 1/parts of the images,
        validated and reported at each rung. Stopped at one (pruned, or too slow for the next), it
        logs its curve so far, the rung and its validation accuracy there, and nothing a finished
        trial adds (train and test accuracy, reports, the model): a first look costs seconds."""
        trial, pruner = self.trial, self.cfg.pruner
        pace = self.pace(pruner.rung_steps[-1], rungs=pruner.rung_steps)
        rungs = self.rungs(splits.x_val, splits.y_val, pace, splits.x_train[:1024])
        extra = [EpochLogger(mlflow.active_run().info.run_id), keras.callbacks.TerminateOnNaN(), *filter(None, [pace])]
        self.log_trial(hp, trial)
        start = time.perf_counter()
        history = fit(model, splits, trial.trainer, [rungs, *(callbacks or []), *extra], epochs=pruner.rungs[-1],
                      aug=trial.model.augment, parts=pruner.parts)
        self.check(history.history.get("loss", []), pace)
        seconds = time.perf_counter() - start
        stopped = self.stopped_early(rungs, len(history.epoch), seconds)
        if stopped:
            return stopped
        timing = {"epoch_seconds": seconds / pruner.rungs[-1], "rung": rungs.reached}
        summary = log_results(model, splits, per_epoch(history, pruner.parts), self.report, trial.model.augment,
                              train_every=GAP_SAMPLE, **timing)
        return {"val_accuracy": summary["val_accuracy"]}


def known_configs(cfg: Config) -> dict[str, Any]:
    """The configs a Fashion-MNIST sweep tries first: the registry's `best` version's (its
    source run's config.yaml) and the original project's final model (experiment=seed_final)."""
    return {f"{cfg.mlflow.registered_model}@{cfg.selection.alias}": registered_config(cfg),
            "seed_final": checked("train", ["experiment=seed_final"]).model_dump()}


class FashionKind(SweepKind):
    """Fashion-MNIST: the data has a test set, kept for the one evaluation of the model that
    is registered."""

    def __init__(self) -> None:
        super().__init__("fashion", test_set=True)

    def data(self, cfg: Config) -> Splits:
        return load_splits(cfg.data.dir, cfg.data.val_fraction, cfg.data.subset, cfg.seed)

    def hypermodel(self, cfg: Config, data: Splits, minutes: float) -> SpaceHyperModel:
        return SpaceHyperModel(cfg, minutes, pruned=True)

    def longer(self, cfg: Config, data: Splits) -> SpaceHyperModel:
        """Keeps the best epoch within `selection.max_gap`: a long run can overfit by its end,
        and a single network has no warm-up stage that must run first."""
        return SpaceHyperModel(cfg, max_gap=cfg.selection.max_gap)

    def first_trials(self, cfg: Config) -> list[dict[str, Any]]:
        """The registry's `best` settings and seed_final, where they fit the space
        (fmnist/search/seeding.py): a sweep never does worse, by the luck of its draws, than either."""
        return first_trials(cfg.search, known_configs(cfg))

    def registered_model(self, cfg: Config) -> str:
        return cfg.mlflow.registered_model

    def holder_score(self, cfg: Config, data: Splits) -> HolderScore:
        return keras_holder_score(cfg.mlflow.registered_model, data.x_val, data.y_val)

    def registration(self, cfg: Config, run_id: str, data: Splits) -> Registration:
        """The test set is used here, once, on the model that is registered (selection never saw
        it), with its 95% interval; the run's reports are drawn again in full with it (t-SNE
        included). A run logs a Keras model, which answers 28x28 arrays: the registry gets it
        logged again on the parent run as a PhotoClassifier (`best_model`), which answers
        photos, for serving and fmnist.predict."""
        model = mlflow.keras.load_model(f"runs:/{run_id}/model", custom_objects=CUSTOM_OBJECTS)
        test = predict(model, data.x_test)
        accuracy = test.accuracy(data.y_test)
        log_run_reports(model, data, load_history(MlflowClient(), run_id), cfg.report, test, run_id=run_id)
        uri = log_photo_model(model, name="best_model")
        return Registration(uri, {"test_accuracy": accuracy, "test_margin": margin(accuracy, len(data.y_test))})

    def score(self, best: dict[str, Any], cfg: Config) -> str:
        """The registered model's test accuracy and its 95% interval: 93.4 and 93.8 differ by
        less than two intervals' half-widths on 10,000 images (a resumed sweep lacks the margin)."""
        shown = f"test accuracy {best.get('test_accuracy', float('nan')):.4f}"
        return shown + (f" ± {best['test_margin']:.4f} (95% interval)" if "test_margin" in best else "")
