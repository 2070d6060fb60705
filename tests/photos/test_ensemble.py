"""A photo sweep with `selection.ensemble=2` end to end on the shipped photos: the winner and
the next best trial are averaged into one model, logged as child run `ensemble` with what it
costs per photo, and registered; `fmnist.predict` and the served pyfunc take that version as
they take a single model, and answer the user's class names and the Keras ensemble's
probabilities."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from fmnist.config import Config, validate
from fmnist.config.loading import checked, compose
from fmnist.images.preprocess import prepare
from fmnist.images.reading import read_image
from fmnist.kinds import sweep
from fmnist.kinds.photos import same_steps
from fmnist.photos.predicting import predict
from fmnist.serving.classifier import probabilities
from fmnist.serving.loading import Classifier, load_classifier
from fmnist.training.calibration import calibrated
from fmnist.training.ensemble import averaged
from tests.photos.test_finetune import CLASSES, LIMITS, PHOTO, b64, make_folder


def ensemble_sweep_cfg(folder: Path, tmp_path: Path) -> Config:
    """experiment=finetune, small: two trials from scratch on 32x32 photos, selecting on the
    training photos themselves (`validation=` the same folder), no retrain, two-model ensemble.
    Eight epochs on those twelve photos get each trial right on every one of them, and an
    average of models that are all right on a photo is right on it too: the ensemble is then
    no worse than the winner, on any machine, and is what gets registered."""
    return validate(Config, compose("train", [
        "experiment=finetune", f"photos={folder}", f"validation={folder}", f"finetune.cache={tmp_path / 'cache'}",
        "trainer.verbose=0", "tuner.max_trials=2", "tuner.initial_points=2", "pruner.rungs=[8]",
        "selection.retrain_epochs=0", "selection.max_gap=1", "selection.ensemble=2", "photo.size=32",
        "report.enabled=false", "search.trainer.batch_size.values=[4]"]))


@pytest.mark.slow  # two trials, an ensemble and three model loads: ~1 min here
def test_a_photo_sweep_registers_the_average_of_its_two_best_models(store, tmp_path, capsys):
    folder = make_folder(tmp_path / "photos")
    assert sweep(ensemble_sweep_cfg(folder, tmp_path)) == 0
    out = capsys.readouterr().out
    client = MlflowClient()
    experiment = client.get_experiment_by_name("fmnist-photos").experiment_id
    [run] = client.search_runs([experiment], "tags.role = 'ensemble'")
    trials = {r.info.run_id: r.data.metrics["val_accuracy"]
              for r in client.search_runs([experiment], "tags.trial_status = 'COMPLETED'")}
    members = run.data.tags["members"].split(",")
    assert sorted(members) == sorted(trials) and trials[members[0]] == max(trials.values())  # the winner first
    m = run.data.metrics
    assert m["members"] == 2 and m["seconds_per_photo"] > 0 and m["member_seconds_per_photo"] > 0
    assert m["overfit_gap"] == pytest.approx(m["train_accuracy"] - m["val_accuracy"])
    assert m["val_accuracy"] >= trials[members[0]]  # else the winner alone is registered
    assert "ensemble of 2: val" in out and "registering the ensemble" in out

    version = client.get_model_version("fmnist-photos", "1")
    assert version.run_id == version.tags["source_run"] == run.info.run_id
    assert version.tags["members"] == run.data.tags["members"] and version.tags["classes"] == ",".join(CLASSES)

    ref, csv_out, sheet = "models:/fmnist-photos/1", tmp_path / "preds.csv", tmp_path / "sheet.png"
    assert predict(checked("predict", [f"model={ref}", f"images={folder}/shoes", f"output={csv_out}",
                                       f"sheet={sheet}"])) == 0
    rows = list(csv.DictReader(csv_out.open()))
    assert len(rows) == 4 and {r["class_name"] for r in rows} <= set(CLASSES) and Image.open(sheet).size[0] > 0

    photos = sorted(folder.glob("*/*.jpg"))
    served = mlflow.pyfunc.load_model(ref).predict(pd.DataFrame({"image": [b64(p) for p in photos]}))
    assert set(served["class_name"]) <= set(CLASSES) and not any(served["error"])
    np.testing.assert_allclose(np.stack(served["probabilities"]), keras_ensemble(members, m, photos),
                               rtol=1e-4, atol=1e-5)


def keras_ensemble(members: list[str], metrics: dict[str, float], photos: list[Path]) -> np.ndarray:
    """The members' own logged models averaged here (and temperature-scaled as the run says),
    on the photos prepared as the served model prepares them."""
    loaded = [load_classifier(mlflow.get_run(r).data.tags["model_uri"], "fmnist-cnn") for r in members]
    model = averaged([c.model for c in loaded])
    if "temperature" in metrics:
        model = calibrated(model, metrics["temperature"])
    steps = loaded[0].photo
    x = np.stack([prepare(read_image(p.read_bytes(), LIMITS, steps.work_size), "auto", steps) for p in photos])
    return probabilities(model, x)


def test_only_members_that_prepare_photos_as_the_winner_does_are_averaged(capsys):
    colour, look = (PHOTO.model_copy(update=u) for u in ({"input": "colour", "size": 32}, {"input": "fmnist", "size": 28}))
    members = [(run, Classifier(None, CLASSES, steps)) for run, steps in (("w", colour), ("a", look), ("b", colour))]
    assert [run for run, _ in same_steps(members)] == ["w", "b"]
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "1 of 3 models prepare photos otherwise than the winner" in out
