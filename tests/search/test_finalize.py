"""The closing policy (fmnist/search/closing.py) on its own: a real tiny search (keras-tuner,
its trials as MLflow child runs of a parent, in a real sqlite store) whose hypermodel trains
nothing but logs the scores each test scripts, then `finalize` called directly with a kind
made for the test. What is checked is the one policy every kind shares: the best trial within
max_gap, promotion, the retrain kept only when within the gap and no worse on validation,
the version and its tags, the alias against the holder, and a rerun that registers nothing."""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt
import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.config import SearchParam
from fmnist.config.loading import checked
from fmnist.search import sweeping
from fmnist.search.closing import finalize
from fmnist.search.kind import Registration, SweepKind
from fmnist.search.leaderboard import child_runs
from fmnist.search.tuning import ConfigHyperModel, make_tuner

NAME = "scripted"
RATES = (0.001, 0.002, 0.003)  # trial i has learning rate RATES[i] (the first trials, in order)

pytestmark = pytest.mark.slow  # each test a real keras-tuner search logged to MLflow: ~8 s


class ScriptedHyperModel(ConfigHyperModel):
    """Logs, as a trial's run would, the (val_accuracy, overfit_gap) scripted for its learning rate."""

    def __init__(self, cfg, scores: dict[float, tuple[float, float]]) -> None:
        super().__init__(cfg, name="scripted", program="train")
        self.scores = scores

    def build(self, hp: kt.HyperParameters) -> keras.Model | None:
        return self.configure(hp) and keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def fit(self, hp: kt.HyperParameters, model: keras.Model, data: Any, callbacks=None, **kwargs: Any):
        self.log_trial(hp, self.trial)
        val, gap = self.scores[self.trial.model.learning_rate]
        mlflow.log_metrics({"val_accuracy": val, "overfit_gap": gap, "train_accuracy": val + gap,
                            "epoch_seconds": 1.0, "epochs": kwargs.get("epochs", 0)})
        return {"val_accuracy": val}


class ScriptedKind(SweepKind):
    """Trials score `trials`; their longer runs (promotion, the retrain) `longer_scores`; the
    holder of the alias scores `holder` on the sweep's images (a version's score, or None)."""

    def __init__(self, trials: dict[float, tuple[float, float]], longer_scores: dict[float, tuple[float, float]],
                 holder: dict[str, float | None] | None = None) -> None:
        super().__init__("scripted", test_set=False)
        self.trials, self.longer_scores, self.holder = trials, longer_scores, holder or {}

    def data(self, cfg) -> None:
        return None

    def hypermodel(self, cfg, data, minutes: float) -> ScriptedHyperModel:
        return ScriptedHyperModel(cfg, self.trials)

    def longer(self, cfg, data) -> ScriptedHyperModel:
        return ScriptedHyperModel(cfg, self.longer_scores)

    def first_trials(self, cfg) -> list[dict[str, Any]]:
        return [{"model.learning_rate": rate} for rate in RATES]

    def registered_model(self, cfg) -> str:
        return NAME

    def holder_score(self, cfg, data):
        return self.holder.get

    def registration(self, cfg, run_id: str, data) -> Registration:
        return Registration(f"file:///nowhere/{run_id}", {"measured_here": 0.5}, {"kind": "scripted"})

    def score(self, best: dict[str, Any], cfg) -> str:
        return f"val {best['val_accuracy']:.2f}"


def config(*overrides: str):
    """The quick experiment, reports off, its space one learning-rate choice per trial."""
    cfg = checked("train", ["experiment=quick", "report.enabled=false", "selection.max_gap=0.1",
                            "selection.retrain_epochs=5", "selection.retrain_minutes=0", *overrides])
    space = {"model.learning_rate": SearchParam.model_validate({"type": "choice", "values": list(RATES)})}
    return cfg.model_copy(update={"search": space})


def searched(kind: ScriptedKind, cfg, tmp_path) -> tuple[kt.Tuner, str]:
    """A real search of three scripted trials under a new parent run; returns the tuner and the parent's id."""
    mlflow.set_experiment("scripted")  # this store's, not one a test before left active
    with mlflow.start_run(run_name=cfg.sweep.name) as parent:
        tuner = make_tuner(cfg, kind.hypermodel(cfg, None, 0), parent.info.run_id, str(tmp_path / "sweeps"),
                           first=kind.first_trials(cfg))
        tuner.search(None, verbose=0)
    return tuner, parent.info.run_id


def closed(kind: ScriptedKind, cfg, tmp_path) -> tuple[dict[str, Any] | None, str, kt.Tuner]:
    tuner, parent_id = searched(kind, cfg, tmp_path)
    with mlflow.start_run(run_id=parent_id):
        best = finalize(kind, tuner, cfg, mlflow.get_run(parent_id), None)
    return best, parent_id, tuner


def run_of(parent_id: str, role: str) -> list:
    return child_runs(MlflowClient(), mlflow.get_run(parent_id), role=role)


def version(number: str = "1"):
    return MlflowClient().get_model_version(NAME, number)


TRIALS = {0.001: (0.80, 0.02), 0.002: (0.85, 0.03), 0.003: (0.90, 0.20)}  # trial 2 overfits: not eligible


def test_the_best_trial_within_the_gap_retrained_better_is_what_gets_registered(store, tmp_path):
    kind = ScriptedKind(TRIALS, {0.002: (0.88, 0.04)})
    best, parent_id, _ = closed(kind, config(), tmp_path)
    final = run_of(parent_id, "final")
    assert len(final) == 1 and final[0].data.tags["trial_id_source"] == "1"
    assert final[0].data.metrics["epochs"] == 5, "the retrain: selection.retrain_epochs"
    v = version()
    assert v.tags["source_run"] == final[0].info.run_id and v.tags["trial_id"] == "1"
    assert (v.tags["val_accuracy"], v.tags["measured_here"], v.tags["kind"], v.tags["sweep"]) == ("0.88", "0.5",
                                                                                                 "scripted", "quick")
    assert v.tags["hp.model.learning_rate"] == "0.002"
    parent = mlflow.get_run(parent_id).data
    assert parent.tags["registered_version"] == "1" and parent.tags["best_trial_id"] == "1"
    assert parent.metrics["best_val_accuracy"] == 0.88 and parent.metrics["best_measured_here"] == 0.5
    assert (best["version"], best["moved"], best["val_accuracy"]) == ("1", True, 0.88)
    assert str(MlflowClient().get_model_version_by_alias(NAME, "best").version) == "1"


@pytest.mark.parametrize("retrain", [(0.84, 0.02), (0.95, 0.15)], ids=["worse-on-validation", "overfits"])
def test_a_retrain_worse_on_validation_or_over_the_gap_leaves_the_trial_registered(store, tmp_path, capsys, retrain):
    best, parent_id, _ = closed(ScriptedKind(TRIALS, {0.002: retrain}), config(), tmp_path)
    trial = next(r for r in child_runs(MlflowClient(), mlflow.get_run(parent_id), trial_id="1"))
    assert version().tags["source_run"] == trial.info.run_id and best["val_accuracy"] == 0.85
    assert "registering trial 1's own model instead" in capsys.readouterr().out


def test_without_a_retrain_the_trial_itself_is_registered(store, tmp_path):
    best, parent_id, _ = closed(ScriptedKind(TRIALS, {}), config("selection.retrain_epochs=0"), tmp_path)
    assert not run_of(parent_id, "final") and best["trial_id"] == "1" and best["val_accuracy"] == 0.85


def test_promotion_retrains_the_trial_that_is_best_after_training_longer(store, tmp_path):
    """Trial 1 is best after the short trials; trial 0 is best after promote_epochs more."""
    longer = {0.001: (0.89, 0.05), 0.002: (0.86, 0.05)}
    best, parent_id, _ = closed(ScriptedKind(TRIALS, longer), config("selection.promote=2"), tmp_path)
    promoted = run_of(parent_id, "promote")
    assert sorted(r.data.tags["trial_id_source"] for r in promoted) == ["0", "1"]
    final = run_of(parent_id, "final")
    assert final[0].data.tags["trial_id_source"] == "0" and best["trial_id"] == "0"
    assert version().tags["source_run"] == final[0].info.run_id


def test_a_better_holder_keeps_the_alias(store, tmp_path):
    mlflow.register_model((tmp_path / "holder").as_uri(), NAME)
    MlflowClient().set_registered_model_alias(NAME, "best", "1")
    best, _, _ = closed(ScriptedKind(TRIALS, {0.002: (0.88, 0.04)}, holder={"1": 0.95}), config(), tmp_path)
    assert (best["version"], best["moved"], best["holder_val_accuracy"]) == ("2", False, 0.95)
    assert str(MlflowClient().get_model_version_by_alias(NAME, "best").version) == "1"


def test_no_trial_within_the_gap_registers_nothing(store, tmp_path):
    best, parent_id, _ = closed(ScriptedKind(TRIALS, {}), config("selection.max_gap=0.01"), tmp_path)
    assert best is None and not run_of(parent_id, "final")
    assert not MlflowClient().search_registered_models()


def test_a_rerun_of_a_closing_that_failed_after_registering_compares_and_registers_nothing(store, tmp_path,
                                                                                           monkeypatch):
    """The store fails as the alias would move: the rerun (a resumed sweep of either kind)
    compares the version registered then, and registers no other."""
    kind = ScriptedKind(TRIALS, {0.002: (0.88, 0.04)})
    cfg = config()
    tuner, parent_id = searched(kind, cfg, tmp_path)

    def store_fails(*args: Any) -> None:
        raise MlflowException("database is locked")

    with monkeypatch.context() as m, mlflow.start_run(run_id=parent_id):
        m.setattr(MlflowClient, "set_registered_model_alias", store_fails)
        with pytest.raises(MlflowException):
            finalize(kind, tuner, cfg, mlflow.get_run(parent_id), None)
    for moved in (True, None):  # compared on the first rerun; the second finds it compared
        with mlflow.start_run(run_id=parent_id):
            best = finalize(kind, tuner, cfg, mlflow.get_run(parent_id), None)
        assert (best["version"], best["moved"]) == ("1", moved)
    assert len(MlflowClient().search_model_versions(f"name='{NAME}'")) == 1
    assert len(run_of(parent_id, "final")) == 1, "no second retrain"


def test_the_engine_runs_a_kind_it_is_handed_end_to_end(store, tmp_path, capsys):
    """sweeping.sweep knows no kind: handed this one, it searches, closes and reports with it."""
    cfg = config(f"sweep.dir={tmp_path / 'sweeps'}")
    assert sweeping.sweep(cfg, ScriptedKind(TRIALS, {0.002: (0.88, 0.04)})) == 0
    out = capsys.readouterr().out
    assert f"registered models:/{NAME}/1 (alias @best moved to it); val 0.88" in out
    assert "   test  " not in out, "a kind without a test set has no test column"

