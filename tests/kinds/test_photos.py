"""The photo kind's hypermodel (fmnist/kinds/photos.py) without training: what a trial's start
implies for its input, and the command that trains its settings again."""

from __future__ import annotations

import keras_tuner as kt
import mlflow

from fmnist.config.loading import checked
from fmnist.kinds.photos import PhotoHyperModel
from tests.conftest import PHOTOS


def configured(base: str):
    cfg = checked("train", ["experiment=finetune", f"photos={PHOTOS}"])
    hp = kt.HyperParameters()
    hp.values["finetune.base"] = base
    return PhotoHyperModel(cfg, 10).configure(hp), cfg


def test_a_trial_from_fashion_mnist_weights_takes_their_input_and_one_from_scratch_the_experiments():
    trial, _ = configured("best")
    assert (trial.photo.input, trial.photo.size) == ("fmnist", 28)
    trial, cfg = configured("none")
    assert (trial.photo.input, trial.photo.size) == (cfg.photo.input, cfg.photo.size) == ("colour", 96)


def test_a_photo_trial_is_trained_again_by_fmnist_finetune(store):
    trial, cfg = configured("none")
    hp = kt.HyperParameters()
    hp.values["finetune.base"] = "none"
    mlflow.set_experiment("photos")  # this store's, not one a test before left active
    with mlflow.start_run() as run:
        PhotoHyperModel(cfg, 10).log_trial(hp, trial)
    line = mlflow.get_run(run.info.run_id).data.tags["command"]
    assert line.startswith("python -m fmnist.finetune ") and f"photos={PHOTOS}" in line
