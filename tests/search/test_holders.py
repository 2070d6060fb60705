"""The registry's `best` holder as a sweep's closing meets it: holders that cannot be loaded or
measured are skipped with a warning, never the end of the sweep, and a closing that failed
registers nothing twice when it runs again."""

from __future__ import annotations

import json

import keras
import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fmnist.config import Config, validate
from fmnist.search import registry
from tests.search.test_sweep import quick_cfg, run_sweep, runs_of

NAME, ALIAS = "fmnist-cnn", "best"
IMAGES = np.zeros((8, 28, 28, 1), np.float32), np.zeros(8, np.int64)


def register(tmp_path, model: str, score: float, holder_score) -> tuple:
    """A version whose URI holds no model (the scores are given), compared as a sweep compares."""
    return registry.register_if_better((tmp_path / model).as_uri(), NAME, ALIAS, score, {"val_accuracy": score},
                                       holder_score)


def holder() -> str:
    return str(MlflowClient().get_model_version_by_alias(NAME, ALIAS).version)


def versions() -> list[str]:
    return sorted(str(v.version) for v in MlflowClient().search_model_versions(f"name='{NAME}'"))


def warnings_about(err: str, version: str) -> list[str]:
    return [line for line in err.splitlines()
            if f"models:/{NAME}/{version}" in line and line.endswith("not comparable, the alias moves")]


def test_a_holder_that_fails_to_be_measured_is_skipped_with_a_warning_and_the_alias_moves(store, tmp_path, capsys):
    register(tmp_path, "first", 0.9, lambda version: None)

    def broken(version: str) -> float:
        raise RuntimeError(f"version {version} exploded\nsecond line of a long traceback")

    version, moved, held = register(tmp_path, "second", 0.5, broken)
    assert (version, moved, held, holder(), versions()) == ("2", True, None, "2", ["1", "2"])
    assert json.loads(MlflowClient().get_model_version(NAME, "2").tags["compared_with"]) == {"1": None}
    assert warnings_about(capsys.readouterr().err, "1") == [
        f"warning: models:/{NAME}/1 cannot be loaded or measured (RuntimeError: version 1 exploded): "
        "not comparable, the alias moves"]


def test_a_broken_holder_is_skipped_and_the_newcomer_is_compared_with_the_next_holder(store, tmp_path, capsys):
    """Sweep A measures holder v1, which fails; meanwhile sweep B registers v2 and takes the alias.
    A is compared with v2, which scores better on A's images: v2 keeps the alias."""
    register(tmp_path, "first", 0.5, lambda version: None)

    def a_scores(version: str) -> float:
        if version == "1":
            assert register(tmp_path, "b", 0.9, lambda version: 0.5)[1]
            raise ValueError("operands could not be broadcast together")
        return 0.95

    assert register(tmp_path, "a", 0.8, a_scores) == ("3", False, 0.95)
    assert holder() == "2" and versions() == ["1", "2", "3"]
    assert json.loads(MlflowClient().get_model_version(NAME, "3").tags["compared_with"]) == {"1": None, "2": 0.95}
    assert len(warnings_about(capsys.readouterr().err, "1")) == 1


def test_a_closing_that_fails_after_registering_is_compared_on_its_rerun_not_registered_again(store, tmp_path,
                                                                                               monkeypatch):
    """The store fails as the alias moves: the run (a sweep's parent) already names the version,
    so the rerun compares that version instead of registering another."""
    register(tmp_path, "first", 0.5, lambda version: None)

    def store_fails(*args):
        raise MlflowException("database is locked")

    with mlflow.start_run(experiment_id=mlflow.set_experiment("fmnist").experiment_id) as run:  # not an earlier test's
        with monkeypatch.context() as m:
            m.setattr(MlflowClient, "set_registered_model_alias", store_fails)
            with pytest.raises(MlflowException):
                register(tmp_path, "second", 0.8, lambda version: 0.5)
    assert mlflow.get_run(run.info.run_id).data.tags["registered_version"] == "2"
    assert holder() == "1" and versions() == ["1", "2"]
    assert registry.finish_comparison(NAME, ALIAS, "2", lambda version: 0.5) is True
    assert registry.finish_comparison(NAME, ALIAS, "2", lambda version: 0.5) is None  # compared once
    assert holder() == "2" and versions() == ["1", "2"]


def lambda_model() -> keras.Model:
    """Safe mode refuses to load it: the Lambda's Python code would run."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x)))


def colour_model() -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))


def other_answer_model() -> keras.Model:
    """Takes Fashion-MNIST's images but answers in another shape (10 x 3): no accuracy to read."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Dense(30)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Reshape((10, 3))(x))


def register_keras_holder(model: keras.Model, config: dict | None = None) -> str:
    """`model` logged as fmnist.train logs one (keras flavour, with the run's config.yaml) and
    registered as the `best` holder."""
    mlflow.set_experiment("holders")
    with mlflow.start_run(experiment_id=mlflow.set_experiment("fmnist").experiment_id) as run:  # not an earlier test's
        info = mlflow.keras.log_model(model, name="model", pip_requirements=["keras"])  # no slow inference
        if config is not None:
            mlflow.log_dict(config, "config.yaml")
    version = str(mlflow.register_model(info.model_uri, NAME, tags={"source_run": run.info.run_id}).version)
    MlflowClient().set_registered_model_alias(NAME, ALIAS, version)
    return version


def test_real_holders_the_sweep_cannot_measure_give_the_alias_up_with_one_line_each(store, tmp_path, capsys):
    score = registry.keras_holder_score(NAME, *IMAGES)
    for model in (lambda_model, colour_model, other_answer_model):
        old = register_keras_holder(model())
        new, moved, held = registry.register_if_better((tmp_path / "new").as_uri(), NAME, ALIAS, 0.5, {}, score)
        assert (moved, held, holder()) == (True, None, new), model.__name__
        lines = [line for line in capsys.readouterr().err.splitlines() if f"models:/{NAME}/{old}" in line]
        assert len(lines) == 1 and "not comparable" in lines[0], model.__name__


@pytest.mark.slow
def test_a_sweep_finishes_past_a_best_holder_it_can_neither_load_nor_seed_from(store, capsys):
    """The holder: a Keras model with a Lambda layer, trained by a config without
    model.conv_blocks. The sweep tries neither first, skips the holder at its closing with one
    line each, registers once and takes the alias; its rerun registers nothing more."""
    config = validate(Config, quick_cfg()).model_dump()
    del config["model"]["conv_blocks"]
    register_keras_holder(lambda_model(), config)
    run_sweep("sweep.name=after", "tuner.max_trials=1")
    err = capsys.readouterr().err
    assert f"note: {NAME}@{ALIAS} does not fit the search space (its config has no model.conv_blocks)" in err
    assert len([line for line in err.splitlines() if f"models:/{NAME}/1" in line and "not comparable" in line]) == 1
    assert holder() == "2" and versions() == ["1", "2"]
    parent = next(r for r in runs_of(MlflowClient()) if r.info.run_name == "after")
    assert parent.info.status == "FINISHED" and parent.data.tags["registered_version"] == "2"
    run_sweep("sweep.name=after", "tuner.max_trials=1")  # the rerun: resumed, already closed
    assert holder() == "2" and versions() == ["1", "2"]
