"""A space at config paths becomes keras-tuner hyperparameters, and each trial one validated config."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmnist.config import Config, validate
from fmnist.config.loading import compose
from fmnist.kinds.fashion import SpaceHyperModel
from fmnist.search.space import command, params, trial_config


def trial_hp(**values) -> kt.HyperParameters:
    """A trial's hyperparameters as the tuner would hand them over (names are config paths)."""
    hp = kt.HyperParameters()
    hp.values.update({k.replace("__", "."): v for k, v in values.items()})
    return hp


@pytest.fixture(scope="module")
def cfg() -> Config:
    return validate(Config, compose("train", ["pruner=none", "+search.trainer.epochs={type:int,min:3,max:6}"]))


def test_each_block_gets_its_own_filters_and_dropout_and_shares_the_rest(cfg):
    hp = trial_hp(**{"model.conv_blocks": 3, "model.conv_blocks.0.filters": 32, "model.conv_blocks.1.filters": 64,
                     "model.conv_blocks.2.filters": 96, "model.conv_blocks.2.dropout": 0.3,
                     "model.conv_blocks.*.kernel": 3, "model.conv_blocks.*.padding": "same",
                     "model.conv_blocks.*.batch_norm": True, "trainer.epochs": 4, "trainer.batch_size": 256})
    trial = trial_config(hp, cfg)
    assert [b.filters for b in trial.model.conv_blocks] == [32, 64, 96]
    assert trial.model.conv_blocks[2].dropout == 0.3 and all(b.batch_norm for b in trial.model.conv_blocks)
    assert (trial.trainer.epochs, trial.trainer.batch_size) == (4, 256)
    assert {"model.conv_blocks.1.filters", "model.conv_blocks.2.filters", "model.conv_blocks.1.dropout"} <= {
        p.name for p in hp.space}
    logged = params(hp.values, trial)  # a shared value is logged at each block's path: keys a user can type
    assert logged["model.conv_blocks.2.batch_norm"] is True and not any("*" in k for k in logged)


def test_fewer_blocks_drop_the_later_blocks_values(cfg):
    trial = trial_config(trial_hp(**{"model.conv_blocks": 1}), cfg)
    assert len(trial.model.conv_blocks) == 1 and trial.model.conv_blocks[0] == cfg.model.conv_blocks[0]


def test_what_the_space_leaves_out_keeps_the_base_value(cfg):
    narrow = cfg.model_copy(update={"search": {k: v for k, v in cfg.search.items() if k == "model.learning_rate"}})
    trial = trial_config(trial_hp(**{"model.learning_rate": 0.002}), narrow)
    assert trial.model.learning_rate == 0.002
    assert trial.model_dump(exclude={"model"}) == narrow.model_dump(exclude={"model"})
    assert trial.model.model_dump(exclude={"learning_rate"}) == cfg.model.model_dump(exclude={"learning_rate"})


def test_an_architecture_that_shrinks_the_image_away_fails_the_trial():
    cfg = validate(Config, compose("train", ["search=wide"]))  # the default space keeps padding 'same'
    hp = trial_hp(**{"model.conv_blocks": 3, "model.conv_blocks.*.kernel": 5, "model.conv_blocks.*.padding": "valid"})
    with pytest.raises(kt.errors.FailedTrialError, match=r"invalid config: conv_blocks\[2\] shrinks the 28x28"):
        SpaceHyperModel(cfg).build(hp)


def test_the_default_space_turns_on_flips_and_shifts(cfg):
    augment = trial_config(kt.HyperParameters(), cfg).model.augment  # fixed entries: set in every trial
    assert (augment.flip, augment.shift, augment.mirror_average) == (True, 0.05, True)


def test_the_command_names_only_what_differs_from_the_plain_config(cfg):
    quick = validate(Config, compose("train", ["experiment=quick", "data.subset=1500"]))
    trial = trial_config(trial_hp(**{"model.conv_blocks": 2, "trainer.batch_size": 128}), quick)
    line = command(trial, cfg)
    assert line.startswith("python -m fmnist.train ") and "data.subset=1500" in line and "name=quick" in line
    assert "'model.conv_blocks=[{filters:" in line and "trainer.batch_size=128" in line
    assert "mlflow." not in line and "search." not in line


def test_stepped_floats_are_what_the_space_wrote_in_params_config_and_command():
    """keras-tuner makes a stepped float as min + k * step: 0.0 + 3 * 0.1 is 0.30000000000000004."""
    cfg = validate(Config, compose("train", []))
    hp = kt.HyperParameters()
    hp.values.update({"model.conv_blocks": 2})
    hp.Float("model.dense.0.dropout", 0.0, 0.5, step=0.1, default=3 * 0.1)
    assert hp.values["model.dense.0.dropout"] == 0.30000000000000004
    trial = trial_config(hp, cfg)
    assert trial.model.dense[0].dropout == 0.3
    assert params(hp.values, trial)["model.dense.0.dropout"] == 0.3
    line = command(trial, validate(Config, compose("train", [])))
    assert "dropout:0.3}" in line and "0.30000000000000004" not in line
