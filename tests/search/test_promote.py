"""Before the long retrain, the best few trials train longer, and the best of those is the
one retrained and registered: a short trial's rank is not the last word."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from fmnist.config import Config, validate
from fmnist.config.loading import compose
from fmnist.kinds import sweep


@pytest.mark.slow
def test_the_best_after_promotion_is_retrained_and_registered(store, capsys):
    overrides = ["experiment=quick", "data.subset=1500", "tuner.max_trials=3", "selection.max_gap=1.0",
                 "selection.promote=2", "selection.promote_epochs=2",
                 "selection.retrain_epochs=3"]  # longer than the trials: the retrain is registered if no worse
    assert sweep(validate(Config, compose("train", overrides))) == 0
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("fmnist").experiment_id], "tags.role != ''")
    promoted = {r.data.tags["trial_id_source"]: r.data.metrics["val_accuracy"] for r in runs
                if r.data.tags["role"] == "promote"}
    final = next(r for r in runs if r.data.tags["role"] == "final")
    assert len(promoted) == 2, "the two best trials, each trained longer"
    assert final.data.tags["trial_id_source"] == max(promoted, key=promoted.get)
    best = client.get_model_version_by_alias("fmnist-cnn", "best")
    assert best.tags["source_run"] == final.info.run_id
    assert "± " in capsys.readouterr().out, "the test accuracy with its 95% interval"
