"""A sweep's first trials are what is already known to be good: the registry's `best`
version's settings and the original project's final model, when they fit the space."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from fmnist import cli
from fmnist.config import Config, validate
from fmnist.search.seeding import first_trials, known_values
from fmnist.search.sweeping import sweep
from tests.conftest import mlflow_store

QUICK = ["experiment=quick", "data.subset=1500"]


def seed_final() -> dict:
    return cli.config("train", ["experiment=seed_final"]).model_dump()


def test_seed_final_fits_the_default_space_with_the_spaces_training_budget():
    values, notes = known_values(cli.config("train", []).search, seed_final())
    assert values["model.conv_blocks"] == 2 and values["model.conv_blocks.1.filters"] == 64
    assert values["model.conv_blocks.1.dropout"] == 0.3 and values["model.learning_rate"] == 0.001
    assert values["model.conv_blocks.*.kernel"] == 3 and values["model.augment.flip"] is True  # fixed: every trial's
    assert notes == ["trainer.batch_size 100->128", "trainer.epochs 100->6"]


def test_a_model_the_space_cannot_give_is_not_tried_first_and_the_note_says_why(capsys):
    space = cli.config("train", QUICK).search  # filters 8 or 16: the original's 32 is not there
    assert first_trials(space, {"seed_final": seed_final(), "none registered": None}) == []
    assert ("note: seed_final does not fit the search space (model.conv_blocks.0.filters=32 is not in the space)"
            in capsys.readouterr().err)


def trials_of(sweep_name: str) -> list[dict[str, str]]:
    """The sweep's trials' params, in trial order."""
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id],
                              f"tags.sweep = '{sweep_name}' and tags.trial_id != ''", max_results=100)
    return [r.data.params for r in sorted(runs, key=lambda r: int(r.data.tags["trial_id"]))]


@pytest.mark.slow
def test_a_new_sweep_tries_the_registered_best_settings_first(store, capsys):
    assert sweep(validate(Config, cli.compose("train", [*QUICK, "sweep.name=one"]))) == 0
    best = MlflowClient().get_model_version_by_alias("fmnist-cnn", "best")
    registered = mlflow.get_run(best.tags["source_run"]).data.params
    assert sweep(validate(Config, cli.compose("train", [*QUICK, "sweep.name=two"]))) == 0
    out = capsys.readouterr()
    assert "first trial 0: fmnist-cnn@best" in out.out and "note: seed_final does not fit" in out.err
    assert trials_of("two")[0] == registered


@pytest.mark.slow
def test_the_same_seed_tries_the_same_settings_in_the_same_order(tmp_path):
    """Two stores, nothing registered in either: the tuner's draws alone, from `seed`."""
    orders = []
    for store in ("a", "b"):
        (tmp_path / store).mkdir()
        with mlflow_store(tmp_path / store):
            assert sweep(validate(Config, cli.compose("train", [*QUICK, "tuner.max_trials=4", "seed=7"]))) == 0
            orders.append(trials_of("quick"))
    assert len(orders[0]) == 4 and orders[0] == orders[1]
