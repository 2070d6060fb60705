"""fmnist/search/registry.py on its own, in a real sqlite store with real registered versions
(whose sources hold no model: the holder scores are functions the tests give): `settle` moves
the alias only to a better newcomer, reads it again around every slow step so two closings at
once end with the better holding it, and never passes it back and forth; the photo holder
score measures a holder on the photos prepared its own way, or calls it not comparable."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fmnist.config import PhotoSettings, from_yaml
from fmnist.search.registry import photo_holder_score, settle
from fmnist.serving.classifier import log_photo_model

NAME, ALIAS = "fmnist-cnn", "best"


def new_version(tmp_path, label: str) -> str:
    return str(mlflow.register_model((tmp_path / label).as_uri(), NAME).version)


def holder() -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(NAME, ALIAS).version)
    except mlflow.exceptions.MlflowException:
        return None


def scored(scores: dict[str, float | None]):
    """A holder score that returns `scores[version]` and records which versions it measured."""
    measured: list[str] = []

    def score(version: str) -> float | None:
        measured.append(version)
        return scores[version]

    score.measured = measured
    return score


@pytest.fixture
def client(store) -> MlflowClient:
    return MlflowClient()


def test_with_no_holder_the_newcomer_takes_the_alias(client, tmp_path):
    v1 = new_version(tmp_path, "a")
    assert settle(client, NAME, ALIAS, v1, 0.5, scored({})) == (True, {}, "")
    assert holder() == v1


@pytest.mark.parametrize("held, moved", [(0.7, True), (0.8, False), (0.9, False), (None, True)])
def test_the_alias_moves_only_when_the_newcomer_beats_the_holder_on_its_images(client, tmp_path, held, moved):
    """A tie keeps the holder; None (not comparable) moves the alias."""
    v1, v2 = new_version(tmp_path, "a"), new_version(tmp_path, "b")
    client.set_registered_model_alias(NAME, ALIAS, v1)
    assert settle(client, NAME, ALIAS, v2, 0.8, scored({v1: held})) == (moved, {v1: held}, v1)
    assert holder() == (v2 if moved else v1)


def test_a_holder_scored_already_is_not_measured_again(client, tmp_path):
    v1, v2 = new_version(tmp_path, "a"), new_version(tmp_path, "b")
    client.set_registered_model_alias(NAME, ALIAS, v1)
    score = scored({})
    assert settle(client, NAME, ALIAS, v2, 0.8, score, {v1: 0.6}) == (True, {v1: 0.6}, v1)
    assert score.measured == []


def test_an_alias_that_moves_while_the_holder_is_measured_is_compared_with_its_new_holder(client, tmp_path):
    """Sweep A measures holder v1 (slow); meanwhile sweep B moves the alias to v3. A is then
    compared with v3, which scores better on A's images: v3 keeps the alias, though A beat v1."""
    v1, v2, v3 = (new_version(tmp_path, label) for label in "abc")
    client.set_registered_model_alias(NAME, ALIAS, v1)

    def a_scores(version: str) -> float:
        if version == v1:
            client.set_registered_model_alias(NAME, ALIAS, v3)  # B's closing, in between
            return 0.5
        return 0.95

    assert settle(client, NAME, ALIAS, v2, 0.8, a_scores) == (False, {v1: 0.5, v3: 0.95}, v3)
    assert holder() == v3


def test_a_holder_put_back_after_this_closing_moved_the_alias_keeps_it(client, tmp_path):
    """Another process, which finds v1 better on its own images, puts v1 back right after this
    closing moved the alias to v2: v1 keeps it, and neither passes it back again."""
    v1, v2 = new_version(tmp_path, "a"), new_version(tmp_path, "b")
    client.set_registered_model_alias(NAME, ALIAS, v1)

    class PutBack(MlflowClient):
        def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
            super().set_registered_model_alias(name, alias, version)
            super().set_registered_model_alias(name, alias, v1)  # the other process, at once

    assert settle(PutBack(), NAME, ALIAS, v2, 0.8, scored({v1: 0.5})) == (False, {v1: 0.5}, v1)
    assert holder() == v1


CLASSES = ("cat", "dog")


def photo_holder(classes: tuple[str, ...], steps: PhotoSettings) -> str:
    """A PhotoClassifier of `classes` that takes `steps`' inputs, registered as the alias holder."""
    model = keras.Sequential([keras.Input(steps.shape), keras.layers.Flatten(),
                              keras.layers.Dense(len(classes), activation="softmax")])
    mlflow.set_experiment("holders")  # this store's, not one a test before left active
    with mlflow.start_run():
        uri = log_photo_model(model, photo=steps, classes=classes)
    version = str(mlflow.register_model(uri, NAME).version)
    MlflowClient().set_registered_model_alias(NAME, ALIAS, version)
    return version


def test_a_photo_holder_is_measured_on_the_photos_prepared_with_its_own_steps(store):
    steps = from_yaml(PhotoSettings, "photo/default.yaml").model_copy(update={"input": "colour", "size": 32})
    version = photo_holder(CLASSES, steps)
    asked: list[PhotoSettings | None] = []

    def validation(holder_steps: PhotoSettings | None) -> tuple[np.ndarray, np.ndarray]:
        asked.append(holder_steps)
        return np.zeros((4, *holder_steps.shape), np.float32), np.zeros(4, np.int64)

    score = photo_holder_score(NAME, CLASSES, validation)(version)
    assert asked == [steps] and 0.0 <= score <= 1.0


def test_a_photo_holder_of_other_classes_is_not_comparable_with_one_line(store, capsys):
    steps = from_yaml(PhotoSettings, "photo/default.yaml")
    version = photo_holder(("hat", "shoe", "bag"), steps)
    capsys.readouterr()
    assert photo_holder_score(NAME, CLASSES, lambda s: pytest.fail("not measured"))(version) is None
    assert capsys.readouterr().err.strip() == (f"note: models:/{NAME}/{version}: has other classes (hat, shoe, bag): "
                                               "not comparable, the alias moves")
