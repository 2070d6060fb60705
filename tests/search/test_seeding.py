"""A sweep's first trials are what is already known to be good: the registry's `best`
version's settings and the original project's final model, when they fit the space."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from fmnist.config import Config, validate
from fmnist.config.loading import checked, compose
from fmnist.kinds import sweep
from fmnist.search.seeding import first_trials, known_values, registered_config
from tests.conftest import mlflow_store

QUICK = ["experiment=quick", "data.subset=1500"]


def seed_final() -> dict:
    return checked("train", ["experiment=seed_final"]).model_dump()


def test_seed_final_fits_the_default_space_with_the_spaces_training_budget():
    values, notes = known_values(checked("train", []).search, seed_final())
    assert values["model.conv_blocks"] == 2 and values["model.conv_blocks.1.filters"] == 64
    assert values["model.conv_blocks.1.dropout"] == 0.3 and values["model.learning_rate"] == 0.001
    assert values["model.conv_blocks.*.kernel"] == 3 and values["model.augment.flip"] is True  # fixed: every trial's
    assert notes == ["trainer.batch_size 100->128"]  # epochs are the pruner's rungs, not the space's


def test_a_model_the_space_cannot_give_is_not_tried_first_and_the_note_says_why(capsys):
    space = checked("train", QUICK).search  # filters 8 or 16: the original's 32 is not there
    assert first_trials(space, {"seed_final": seed_final(), "none registered": None}) == []
    assert ("note: seed_final does not fit the search space (model.conv_blocks.0.filters=32 is not in the space)"
            in capsys.readouterr().err)


def test_a_known_config_of_another_shape_is_a_note_never_a_crash(capsys):
    """A holder trained by another version of fmnist, or by hand: the paths the space reads are
    missing or hold something else."""
    no_blocks, counted = seed_final(), seed_final()
    del no_blocks["model"]["conv_blocks"]
    counted["model"]["conv_blocks"] = 2
    known = {"no blocks": no_blocks, "counted": counted, "a string": "not a config", "empty": {}}
    assert first_trials(checked("train", QUICK).search, known) == []
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {name} does not fit the search space ({why}); not tried first" for name, why in [
        ("no blocks", "its config has no model.conv_blocks"), ("counted", "its model.conv_blocks is 2, not a list"),
        ("a string", "its config has no model.conv_blocks"), ("empty", "its config has no model.conv_blocks")]]


def test_a_registered_config_that_is_not_yaml_is_a_note_and_nothing_is_tried_first(store, tmp_path, capsys):
    mlflow.set_experiment("holders")
    with mlflow.start_run() as run:
        mlflow.log_text("model: {conv_blocks: [unclosed\n", "config.yaml")
    version = mlflow.register_model((tmp_path / "model").as_uri(), "fmnist-cnn", tags={"source_run": run.info.run_id})
    MlflowClient().set_registered_model_alias("fmnist-cnn", "best", version.version)
    assert registered_config(checked("train", QUICK)) is None
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "note: fmnist-cnn@best does not fit the search space (its config.yaml is not readable YAML: ")


def trials_of(sweep_name: str) -> list[dict[str, str]]:
    """The sweep's trials' params, in trial order."""
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id],
                              f"tags.sweep = '{sweep_name}' and tags.trial_id != ''", max_results=100)
    return [r.data.params for r in sorted(runs, key=lambda r: int(r.data.tags["trial_id"]))]


@pytest.mark.slow
def test_a_new_sweep_tries_the_registered_best_settings_first(store, capsys):
    assert sweep(validate(Config, compose("train", [*QUICK, "sweep.name=one"]))) == 0
    best = MlflowClient().get_model_version_by_alias("fmnist-cnn", "best")
    registered = mlflow.get_run(best.tags["source_run"]).data.params
    assert sweep(validate(Config, compose("train", [*QUICK, "sweep.name=two"]))) == 0
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
            assert sweep(validate(Config, compose("train", [*QUICK, "tuner.max_trials=4", "seed=7"]))) == 0
            orders.append(trials_of("quick"))
    assert len(orders[0]) == 4 and orders[0] == orders[1]
