"""Fine-tuning on a user's photo folders, end to end on small folders of the shipped photos:
the run and its registration, its classes reaching predict's outputs and the served model,
each bad folder's one line, the photo cache, and the photo sweep."""

from __future__ import annotations

import base64
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf, open_dict
from PIL import Image

from fmnist.batches import outputs
from fmnist.config import Config, Limits, PhotoSettings, from_yaml, validate
from fmnist.config.loading import checked, compose
from fmnist.errors import ConfigError
from fmnist.kinds import sweep
from fmnist.photos.finetuning import finetune, photo_data
from fmnist.photos.photoset import PhotoCache, PhotoSetError, load_photo_data, prepare_all, scan, stratified_split
from fmnist.photos.predicting import predict
from fmnist.serving.loading import load_classifier
from fmnist.training.calibration import Temperature, expected_calibration_error
from fmnist.training.run import train
from tests.conftest import PHOTOS, REPO
from tests.photos.test_predict import served_answer

PHOTO = from_yaml(PhotoSettings, "photo/default.yaml")
LIMITS = from_yaml(Limits, "limits/default.yaml")

CLASSES = ("pants", "shoes", "t-shirt")
FAST = ["trainer.epochs=2", "trainer.verbose=0", "trainer.batch_size=4"]


def make_folder(root: Path, classes=CLASSES, per_class: int = 2) -> Path:
    """Class subfolders of the shipped photos, each photo also mirrored (a different file)."""
    for c in classes:
        (root / c).mkdir(parents=True)
        for i, photo in enumerate(sorted((PHOTOS / c).glob("*.jpg"))[:per_class]):
            shutil.copy(photo, root / c / photo.name)
            Image.open(photo).transpose(Image.FLIP_LEFT_RIGHT).save(root / c / f"mirror-{i}.jpg")
    return root


def cfg_for(folder: Path, tmp_path: Path, *overrides: str) -> Config:
    return validate(Config, compose("train", [f"photos={folder}", f"finetune.cache={tmp_path / 'cache'}",
                                                   *FAST, *overrides]))


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "photos")


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.mark.slow
def test_finetune_registers_a_model_that_speaks_its_classes(store, folder, tmp_path):
    run_id = finetune(cfg_for(folder, tmp_path, "finetune.base=none", "photo.input=colour", "photo.size=32",
                              "finetune.augment.flip=true"))
    client = MlflowClient()
    run = client.get_run(run_id)
    assert {"train_accuracy", "val_accuracy", "overfit_gap", "val_loss"} <= set(run.data.metrics)
    assert {"temperature", "ece_before", "ece_after"} <= set(run.data.metrics)  # finetune.calibrate: on by default
    assert run.data.params["photo.input"] == "colour" and run.data.tags["base_model"] == "none"
    assert {m.step for m in client.get_metric_history(run_id, "val_accuracy")} == {1, 2}  # a curve: one per epoch
    reports = {Path(a.path).name for a in client.list_artifacts(run_id, "reports")}
    assert {"confusion.png", "confusion.json", "mistakes.png", "curves.png", "reliability.png"} <= reports
    confusion = json.loads(Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reports/confusion.json"))
                           .read_text())
    assert confusion["class_names"] == list(CLASSES)
    version = client.get_model_version_by_alias("fmnist-photos", "best")
    assert str(version.version) == "1" and version.tags["classes"] == ",".join(CLASSES)

    out, sheet = tmp_path / "preds.csv", tmp_path / "sheet.png"
    ref = "models:/fmnist-photos@best"
    assert predict(checked("predict", [f"model={ref}", f"images={folder}/shoes", f"output={out}", f"sheet={sheet}"])) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and {r["class_name"] for r in rows} <= set(CLASSES)
    assert all(r["top3"].split(" ")[0] in CLASSES for r in rows)
    assert Image.open(sheet).size[0] > 0
    assert predict(checked("predict", [f"model={ref}", f"images={folder}/pants", f"output={tmp_path / 'p.json'}"])) == 0
    assert {r["class_name"] for r in json.loads((tmp_path / "p.json").read_text())} <= set(CLASSES)

    served = mlflow.pyfunc.load_model(ref).predict(pd.DataFrame({"image": [b64(next((folder / "pants").iterdir())),
                                                                           "bm90IGFuIGltYWdl"]}))
    assert served["class_name"][0] in CLASSES and len(served["probabilities"][0]) == len(CLASSES)
    assert served["class_id"][1] == -1 and "not an image" in served["error"][1]
    answer = served_answer(ref, store, tmp_path, b64(next((folder / "t-shirt").iterdir())))
    assert answer["class_name"] in CLASSES and len(answer["probabilities"]) == len(CLASSES)
    with pytest.raises(ConfigError, match=r"takes \(32, 32, 3\) inputs, not the \(28, 28, 1\)"):
        finetune(cfg_for(folder, tmp_path, f"finetune.base={ref}"))  # a colour photo model as a 28x28 start


@pytest.mark.slow
def test_finetune_from_a_fashion_mnist_model_and_the_alias_compares_on_the_same_photos(store, folder, tmp_path):
    fmnist_run = train(validate(Config, compose("train", ["experiment=quick", "data.subset=1000"])))
    base = f"runs:/{fmnist_run}/model"
    first = finetune(cfg_for(folder, tmp_path, f"finetune.base={base}", "finetune.warmup_epochs=1"))
    assert mlflow.get_run(first).data.tags["base_model"] == base
    # A second run that cannot learn (rate ~0): the holder is measured again on these photos, and keeps the alias
    # unless the newcomer scores higher there.
    second = finetune(cfg_for(folder, tmp_path, f"finetune.base={base}", "model.learning_rate=1e-9"))
    client = MlflowClient()
    held = float(client.get_model_version("fmnist-photos", "1").tags["val_accuracy"])
    challenger = mlflow.get_run(second).data.metrics["val_accuracy"]
    holder = str(client.get_model_version_by_alias("fmnist-photos", "best").version)
    assert holder == ("2" if challenger > held else "1")


@pytest.mark.slow  # ~20 s here: two fine-tuning runs
def test_finetune_logs_its_model_scaled_by_the_temperature_it_logs(store, folder, tmp_path):
    """finetune.calibrate (default): the logged model ends in the fitted temperature, and its
    probabilities on the selection photos give the logged ece_after; off: none of it."""
    tiny = ("finetune.base=none", "photo.input=colour", "photo.size=32", "trainer.epochs=1")
    run = mlflow.get_run(finetune(cfg_for(folder, tmp_path, *tiny)))
    metrics = run.data.metrics
    model = load_classifier(run.data.tags["model_uri"], "fmnist-cnn").model
    assert isinstance(model.layers[-1], Temperature) and model.layers[-1].temperature == pytest.approx(
        metrics["temperature"])
    cfg = cfg_for(folder, tmp_path, *tiny)
    a = photo_data(cfg).arrays(cfg.photo)
    ece = expected_calibration_error(outputs(model, a.x_val), a.y_val)  # the cache's float16 inputs: 1e-5 off
    assert ece == pytest.approx(metrics["ece_after"], abs=1e-3)
    assert "reliability.png" in {Path(f.path).name for f in MlflowClient().list_artifacts(run.info.run_id, "reports")}

    off = mlflow.get_run(finetune(cfg_for(folder, tmp_path, *tiny, "finetune.calibrate=false", "report.enabled=false")))
    assert not {"temperature", "ece_before", "ece_after"} & set(off.data.metrics)
    plain = load_classifier(off.data.tags["model_uri"], "fmnist-cnn").model
    assert not any(isinstance(layer, Temperature) for layer in plain.layers)


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_a_folder_with_one_class_is_one_line_and_exit_1(tmp_path):
    one = make_folder(tmp_path / "one", classes=("shoes",))
    out = subprocess.run([sys.executable, "-m", "fmnist.finetune", f"photos={one}", "model=none"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1, out.stderr
    assert f"{one}: needs at least 2 class folders with images, found 1 (shoes)" in errors[0]
    assert not (tmp_path / "mlflow.db").exists()  # nothing trained, nothing logged


@pytest.mark.slow  # ~10 s or more here: make test-all and CI run it
def test_empty_class_one_photo_class_and_unreadable_photos_each_get_a_line(store, folder, tmp_path, capsys):
    (folder / "hat").mkdir()  # empty: skipped
    (folder / "skirt").mkdir()
    shutil.copy(next((PHOTOS / "skirt").glob("*.jpg")), folder / "skirt" / "only.jpg")
    (folder / "pants" / "broken.jpg").write_bytes(b"not a photo")
    whole = next((folder / "shoes").glob("mirror-*.jpg")).read_bytes()
    (folder / "shoes" / "cut.jpg").write_bytes(whole[: len(whole) // 3])
    run_id = finetune(cfg_for(folder, tmp_path, "finetune.base=none"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert sum(f"{folder / 'hat'}: no images" in line for line in lines) == 1
    assert sum(f"{folder / 'skirt'}: only 1 photo" in line for line in lines) == 1
    assert sum("broken.jpg: not an image" in line for line in lines) == 1
    assert sum("cut.jpg: corrupt or truncated" in line for line in lines) == 1
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["class_count"] == 4  # pants, shoes, skirt, t-shirt


def test_bad_folders_and_configs_fail_before_training(tmp_path):
    with pytest.raises(PhotoSetError, match="no such folder"):
        scan(tmp_path / "missing")
    with pytest.raises(PhotoSetError, match="found 0"):
        scan(tmp_path)
    with pytest.raises(ConfigError, match="a Fashion-MNIST start takes the 28x28 fmnist look"):
        validate(Config, compose("train", [f"photos={tmp_path}", "photo.size=64"]))


def test_a_validation_folder_without_the_classes_is_one_line(folder, tmp_path):
    (tmp_path / "other" / "Shoes").mkdir(parents=True)
    shutil.copy(next((folder / "shoes").iterdir()), tmp_path / "other" / "Shoes")
    with pytest.raises(PhotoSetError, match="no images in folders named as the classes of"):
        load_photo_data(str(folder), str(tmp_path / "other"), 0.15, 0, str(tmp_path / "c"), LIMITS, 1)


def test_a_photo_space_is_checked_before_training(store, folder):
    hyperband = compose("train", ["experiment=finetune", f"photos={folder}", "tuner=hyperband"])
    with pytest.raises(ConfigError, match="tuner.kind=hyperband: photo sweeps take random or bayesian"):
        sweep(validate(Config, hyperband))
    later = compose("train", ["experiment=finetune", f"photos={folder}"])
    with open_dict(later):
        later.search.finetune.base["when"] = {"model.learning_rate": [0.001]}  # declared below it
    with pytest.raises(ConfigError, match="search.finetune.base.when: name one entry declared above"):
        sweep(validate(Config, later))


def test_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [10, 4, 1])
    train, val = stratified_split(labels, 0.25, seed=1)
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 0]  # the lone photo trains
    assert sorted([*train, *val]) == list(range(15))
    assert np.array_equal(val, stratified_split(labels, 0.25, seed=1)[1])


def test_cache_is_reused_and_invalidated_by_a_setting_or_a_changed_photo(folder, tmp_path):
    files = scan(folder).files
    cache = PhotoCache(tmp_path / "cache", PHOTO, LIMITS)
    first, _ = prepare_all(files, cache, workers=2)
    again = PhotoCache(tmp_path / "cache", PHOTO, LIMITS)
    second, _ = prepare_all(files, again, workers=2)
    assert again.hits == len(files) and np.allclose(first, second, atol=1e-3)
    other = PhotoCache(tmp_path / "cache", PHOTO.model_copy(update={"smooth": 0.05}), LIMITS)
    prepare_all(files, other, workers=2)
    assert other.hits == 0 and other.dir != cache.dir
    Image.open(files[0]).rotate(90, expand=True).save(files[0])  # same name, new content
    changed = PhotoCache(tmp_path / "cache", PHOTO, LIMITS)
    prepare_all(files, changed, workers=2)
    assert changed.hits == len(files) - 1


@pytest.mark.parametrize("path", ["photo.bogus", "finetune.nonsense"])
def test_a_photo_space_names_real_config_paths(store, folder, tmp_path, path):
    cfg = compose("train", ["experiment=finetune", f"photos={folder}", f"finetune.cache={tmp_path}/c"])
    OmegaConf.set_struct(cfg, False)
    OmegaConf.update(cfg, f"search.{path}", {"type": "fixed", "value": 1}, force_add=True)
    with pytest.raises(ConfigError, match=f"search.{path}: not a config path"):
        sweep(validate(Config, cfg))


def test_a_photo_space_value_out_of_range_fails_before_training(store, folder, tmp_path):
    cfg = compose("train", ["experiment=finetune", f"photos={folder}", "search.trainer.batch_size.values=[0,32]"])
    with pytest.raises(ConfigError, match=r"search.trainer.batch_size: 0 is out of range for trainer.batch_size"):
        sweep(validate(Config, cfg))
    assert not Path("sweeps").exists()


def photo_sweep_cfg(folder: Path, tmp_path: Path, base: str) -> Config:
    """experiment=finetune, small: 3 one-epoch trials from scratch or from `base`, the best retrained for 2."""
    cfg = compose("train", ["experiment=finetune", f"photos={folder}", f"finetune.cache={tmp_path / 'cache'}",
                                 "trainer.verbose=0", "tuner.max_trials=3", "tuner.initial_points=3",
                                 "pruner.rungs=[1]", "selection.retrain_epochs=2", "photo.size=32"])
    cfg.search.finetune.base["values"] = ["none", base]
    for entry in ("trainable", "warmup_epochs"):
        cfg.search.finetune[entry]["when"] = {"finetune.base": [base]}
    return validate(Config, cfg)


@pytest.mark.slow
def test_photo_sweep_registers_its_best_trial_and_resumes(store, folder, tmp_path, capsys):
    fmnist_run = train(validate(Config, compose("train", ["experiment=quick", "data.subset=1000"])))
    cfg = photo_sweep_cfg(folder, tmp_path, f"runs:/{fmnist_run}/model")
    assert sweep(cfg) == 0
    out = capsys.readouterr().out
    client = MlflowClient()
    experiment = client.get_experiment_by_name("fmnist-photos").experiment_id
    trials = [r for r in client.search_runs([experiment]) if "trial_id" in r.data.tags]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    for r in trials:  # params carry the config paths; what trains is searched only for a start from weights
        assert ("finetune.trainable" in r.data.params) == (r.data.params["finetune.base"] != "none")
        size = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{r.info.run_id}/config.yaml"))["photo"]["size"]
        assert size == (32 if r.data.params["finetune.base"] == "none" else 28)
    assert "registered models:/fmnist-photos/1" in out and "sweep time:" in out
    final = [r for r in client.search_runs([experiment]) if r.data.tags.get("role") == "final"]
    assert len(final) == 1 and {m.step for m in client.get_metric_history(final[0].info.run_id, "loss")} == {1, 2}
    source = client.get_model_version("fmnist-photos", "1").tags["source_run"]
    best = max([*trials, *final], key=lambda r: r.data.metrics["val_accuracy"])
    assert mlflow.get_run(source).data.metrics["val_accuracy"] == best.data.metrics["val_accuracy"]
    assert str(client.get_model_version_by_alias("fmnist-photos", "best").version) == "1"
    assert sweep(cfg) == 0  # rerun: resumes, nothing new
    assert "resumed" in capsys.readouterr().out
    assert len([r for r in client.search_runs([experiment]) if "trial_id" in r.data.tags]) == 3


def test_finetune_help_names_the_command():
    out = subprocess.run([sys.executable, "-m", "fmnist.finetune", "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0 and "finetune" in out.stdout
