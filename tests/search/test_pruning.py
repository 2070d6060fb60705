"""The pruners' rules, and the pruner's config checks."""

from __future__ import annotations

import pytest

from fmnist.config import Config, PrunerConfig, validate
from fmnist.config.loading import compose
from fmnist.errors import ConfigError
from fmnist.search.pruning import Pruner, SuccessiveHalving, make_pruner


def test_successive_halving_keeps_the_best_1_over_eta_of_a_rung_so_far():
    sha, scores = SuccessiveHalving([1, 4, 16], eta=3), {}
    kept = []
    for trial, value in enumerate([0.80, 0.70, 0.85, 0.60, 0.84, 0.90]):
        scores.setdefault(0, {})[str(trial)] = value
        kept.append(sha.keep(0, value, scores))
    # 1 trial: it goes on; 2-5: only a new best (n // 3 = 1 kept); 6: the best two of six
    assert kept == [True, False, True, False, False, True]
    assert sha.keep(0, 0.86, {0: {**scores[0], "6": 0.86}})  # 7 trials: the best two; 0.86 is second
    assert not sha.keep(0, 0.845, {0: {**scores[0], "6": 0.845}})  # third


def test_the_last_rung_decides_nothing_and_no_pruner_never_prunes():
    assert SuccessiveHalving([1, 4], eta=2).keep(1, 0.1, {1: {"0": 0.9, "1": 0.1}})
    assert Pruner([1, 4]).keep(0, 0.0, {0: {"0": 1.0, "1": 0.0}})
    assert make_pruner(PrunerConfig(kind="none", eta=3, rungs=[1])).steps == []


def test_rungs_are_counted_in_parts_of_an_epoch():
    p = PrunerConfig(kind="asha", eta=4, rungs=[0.25, 1, 4])
    assert (p.parts, p.rung_steps) == (4, [1, 4, 16])
    assert make_pruner(p).rung(4) == 1 and make_pruner(p).rung(3) is None
    assert PrunerConfig(kind="asha", eta=3, rungs=[0.5, 1.5, 3]).rung_steps == [1, 3, 6]


@pytest.mark.parametrize("overrides, message", [
    (["pruner.rungs=[1,1,3]"], "pruner.rungs=[1, 1, 3]: [1.0, 1.0, 3.0]: must rise from above 0"),
    (["pruner.rungs=[0.25,1,2.5]"], "the last rung is a trial's trainer.epochs: a whole number of epochs"),
    (["pruner.rungs=[0.1,1]"], "each rung must be a whole number of 1/8ths of an epoch at most"),
    (["pruner.eta=1"], "pruner.eta=1: Input should be greater than or equal to 2"),
    (["tuner=hyperband"], "tuner.kind=hyperband: Hyperband halves trials itself; add pruner=none"),
])
def test_a_pruner_that_cannot_work_is_one_line_before_anything_runs(overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(Config, compose("sweep", overrides))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_searched_epoch_count_and_a_pruner_do_not_mix():
    with pytest.raises(ConfigError, match=r"search.trainer.epochs: the pruner's rungs set a trial's epochs"):
        validate(Config, compose("sweep", ["+search.trainer.epochs={type:int,min:3,max:6}"]))
    cfg = validate(Config, compose("sweep", ["+search.trainer.epochs={type:int,min:3,max:6}", "pruner=none"]))
    assert not cfg.pruner.active and "trainer.epochs" in cfg.search
