"""`averaged` (fmnist/training/ensemble.py): the ensemble answers the mean of its members'
probabilities, saves as one .keras file that the served model's loader reads with safe_mode,
and refuses members that do not share an input and classes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from fmnist.serving.classifier import load_keras_file
from fmnist.training.ensemble import averaged
from fmnist.training.model import mirror_averaged


def member(seed: int, shape=(12, 12, 3), classes: int = 4) -> keras.Model:
    """A small photo network, mirror-averaged as a photo run logs it, saved and loaded again:
    every member then carries the same model and layer names, as the sweep's members do."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input(shape, name="image")
    x = layers.Conv2D(4, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    net = keras.Model(inputs, layers.Dense(classes, activation="softmax", name="classes")(x), name="photo_classifier")
    return mirror_averaged(net)


def reloaded(model: keras.Model, path) -> keras.Model:
    model.save(path)
    return load_keras_file(path)


def test_the_ensemble_answers_the_mean_of_its_members_and_survives_a_save(tmp_path):
    members = [reloaded(member(seed), tmp_path / f"m{seed}.keras") for seed in (1, 2, 3)]
    assert len({m.name for m in members}) == 1  # the names that would collide
    x = np.random.default_rng(0).random((6, 12, 12, 3), dtype=np.float32)
    mean = np.mean([keras.ops.convert_to_numpy(m(x)) for m in members], axis=0)
    ensemble = averaged(members)
    assert ensemble.input.name == "image" and ensemble.layers[-1].name == "probabilities"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ensemble(x)), mean, rtol=1e-5, atol=1e-6)
    loaded = reloaded(ensemble, tmp_path / "ensemble.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), mean, rtol=1e-5, atol=1e-6)


def test_one_member_is_itself():
    one = member(1)
    assert averaged([one]) is one


@pytest.mark.parametrize("other", [{"shape": (16, 16, 3)}, {"classes": 5}], ids=["input", "classes"])
def test_members_of_other_inputs_or_classes_are_refused_in_one_line(other):
    with pytest.raises(ValueError, match="must share input shape and class count") as e:
        averaged([member(1), member(2, **other)])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="at least one model"):
        averaged([])
