"""The sweep's oracles on keras-tuner's own (real oracles, saved to a temporary folder): time is
the budget, skipped trials cost no slot and are not proposed again, and rungs prune."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmnist.search import ktapi
from fmnist.search.oracle import NOT_TRAINED, SKIPS_IN_A_ROW
from fmnist.search.pruning import Pruner, SuccessiveHalving
from fmnist.search.tuning import OBJECTIVE, SeededBayesianOracle, SeededRandomOracle


def space(hp: kt.HyperParameters) -> None:
    hp.Choice("filters", [8, 16, 32, 64])
    hp.Float("dropout", 0.0, 0.4, step=0.1)
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")  # room for dozens of distinct trials


def oracle_in(tmp_path, kind=SeededRandomOracle, max_trials: int = 3, pruner: Pruner | None = None, **kwargs):
    """An oracle as a sweep makes it, attached to a real tuner (which gives it its folder and space)."""
    oracle = kind(OBJECTIVE, max_trials, seed=3, failures=3, pruner=pruner or Pruner([]), **kwargs)
    kt.Tuner(oracle=oracle, hypermodel=space, directory=str(tmp_path), project_name="p")
    return oracle


def end(oracle: kt.Oracle, trial, score: float | None = None, message: str | None = None) -> None:
    """End `trial` as a tuner would: COMPLETED with its score, or FAILED with a keras-tuner message."""
    if score is not None:
        oracle.update_trial(trial.trial_id, {"val_accuracy": score})
        trial.status = ktapi.TrialStatus.COMPLETED
    else:
        trial.status, trial.message = "FAILED", f"Traceback ...\nkeras_tuner.src.errors.FailedTrialError: {message}"
    oracle.end_trial(trial)


def test_a_too_slow_trial_leaves_max_trials_untouched_and_is_not_proposed_again(tmp_path):
    oracle = oracle_in(tmp_path, max_trials=3)
    slow = oracle.create_trial("t")
    end(oracle, slow, message=f"{NOT_TRAINED}too slow: 9.1 min projected, over sweep.trial_minutes=4")
    trained = []
    while (trial := oracle.create_trial("t")).status == "RUNNING":
        trained.append(trial.hyperparameters.values)
        end(oracle, trial, score=0.5)
    assert len(trained) == 3, "three trials trained: the skipped one took no slot"
    assert oracle.skipped == [slow.trial_id] and oracle.max_trials == 4
    assert slow.hyperparameters.values not in trained


def test_a_bayesian_proposal_of_tried_values_is_replaced_and_a_used_up_space_stops(tmp_path):
    """With four settings in all, the Gaussian process soon proposes one already tried: each
    setting is trained once, then the search stops, however high the ceiling."""
    def small(hp: kt.HyperParameters) -> None:
        hp.Choice("filters", [8, 16, 32, 64])

    oracle = SeededBayesianOracle(OBJECTIVE, 20, num_initial_points=2, seed=3, failures=3, pruner=Pruner([]))
    kt.Tuner(oracle=oracle, hypermodel=small, directory=str(tmp_path), project_name="p")
    seen = []
    while (trial := oracle.create_trial("t")).status == "RUNNING":
        seen.append(trial.hyperparameters.values["filters"])
        end(oracle, trial, score=seen[-1] / 100)
    assert sorted(seen) == [8, 16, 32, 64]


def test_failures_in_a_row_count_trained_trials_only(tmp_path):
    oracle = oracle_in(tmp_path, max_trials=100)
    for _ in range(SKIPS_IN_A_ROW - 1):
        end(oracle, oracle.create_trial("t"), message=f"{NOT_TRAINED}invalid config: shrinks")
    end(oracle, oracle.create_trial("t"), message="loss diverged (not finite)")
    end(oracle, oracle.create_trial("t"), message="loss diverged (not finite)")
    with pytest.raises(RuntimeError, match="consecutive failures exceeded the limit of 3"):
        end(oracle, oracle.create_trial("t"), message="loss diverged (not finite)")


def test_endless_skips_end_the_search(tmp_path):
    oracle = oracle_in(tmp_path, max_trials=100)
    for _ in range(SKIPS_IN_A_ROW - 1):
        end(oracle, oracle.create_trial("t"), message=f"{NOT_TRAINED}too slow")
    with pytest.raises(RuntimeError, match=f"limit of {SKIPS_IN_A_ROW}"):
        end(oracle, oracle.create_trial("t"), message=f"{NOT_TRAINED}too slow")


def test_a_trial_below_its_rung_is_told_to_stop_and_the_scores_survive_a_reload(tmp_path):
    oracle = oracle_in(tmp_path, max_trials=10, pruner=SuccessiveHalving([1, 4], eta=2))
    first = oracle.create_trial("a")
    assert oracle.update_trial(first.trial_id, {"val_accuracy": 0.8}, step=1).status == "RUNNING"
    second = oracle.create_trial("b")
    answer = oracle.update_trial(second.trial_id, {"val_accuracy": 0.7}, step=1)
    assert answer.status == "STOPPED" and oracle.trials[second.trial_id].status == "RUNNING"
    assert oracle.update_trial(first.trial_id, {"val_accuracy": 0.9}, step=4).status == "RUNNING"  # last rung
    assert oracle.scores == {0: {first.trial_id: 0.8, second.trial_id: 0.7}, 1: {first.trial_id: 0.9}}
    again = oracle_in(tmp_path, max_trials=10, pruner=SuccessiveHalving([1, 4], eta=2))
    again.reload()
    assert again.scores == oracle.scores and again.pruned == {second.trial_id: 0}
