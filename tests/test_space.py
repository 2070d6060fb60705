"""The YAML space becomes keras-tuner hyperparameters and each trial a valid model config."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmnist.config import Config, validate
from fmnist.space import fit_settings, model_config
from fmnist.tuning import SpaceHyperModel
from tests.conftest import compose_cfg


def trial_hp(**values) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.values.update(values)
    return hp


@pytest.fixture(scope="module")
def cfg() -> Config:
    return validate(Config, compose_cfg("config", []))


def test_each_block_gets_its_own_filters_and_dropout(cfg):
    hp = trial_hp(conv_blocks=3, filters_1=32, filters_2=64, filters_3=96, block_dropout_3=0.3,
                  kernel=3, padding="same", batch_norm=True, epochs=4, batch_size=256)
    model = model_config(hp, cfg)
    assert [b.filters for b in model.conv_blocks] == [32, 64, 96]
    assert model.conv_blocks[2].dropout == 0.3 and all(b.batch_norm for b in model.conv_blocks)
    assert fit_settings(hp, cfg) == (4, 256)
    assert {"filters_2", "filters_3", "block_dropout_2"} <= {p.name for p in hp.space}


def test_what_the_space_leaves_out_keeps_the_base_value(cfg):
    narrow = cfg.model_copy(update={"search": {k: v for k, v in cfg.search.items() if k == "learning_rate"}})
    hp = trial_hp(learning_rate=0.002)
    model = model_config(hp, narrow)
    assert model.learning_rate == 0.002
    assert model.conv_blocks == cfg.model.conv_blocks and model.dense == cfg.model.dense
    assert fit_settings(hp, narrow) == (cfg.trainer.epochs, cfg.trainer.batch_size)


def test_an_architecture_that_shrinks_the_image_away_fails_the_trial(cfg):
    with pytest.raises(kt.errors.FailedTrialError, match="invalid model: conv_blocks\\[2\\] shrinks the 28x28"):
        SpaceHyperModel(cfg).build(trial_hp(conv_blocks=3, kernel=5, padding="valid"))


@pytest.mark.parametrize("experiment, perspective", [(None, 0.0), ("photos", 0.15)])
def test_augment_true_adds_flips_and_shifts_to_the_base_augmentation(experiment, perspective):
    cfg = validate(Config, compose_cfg("config", [f"experiment={experiment}"] if experiment else []))
    on, off = model_config(trial_hp(augment=True), cfg).augment, model_config(trial_hp(augment=False), cfg).augment
    assert (on.flip, on.shift, on.perspective, on.mirror_average) == (True, 0.05, perspective, True)
    assert off == cfg.model.augment
