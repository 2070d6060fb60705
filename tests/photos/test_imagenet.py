"""`finetune.base=imagenet:NAME`: a keras.applications network under the photo classifier.

Real Keras throughout, with random weights (`weights=None`): these machines cannot download
ImageNet weights. The download's failure is real too: a proxy on a closed local port makes
every machine fail it at once, as this one fails it for want of a network."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import h5py
import keras
import keras_tuner as kt
import mlflow
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from fmnist.config import Config, validate
from fmnist.config.loading import checked, compose
from fmnist.errors import ConfigError, NoModelError
from fmnist.kinds.photos import PhotoHyperModel, usable_space
from fmnist.photos.finetuning import base_tags, fit_and_log, photo_data
from fmnist.photos.imagenet import backbone, constructor, family_scaling
from fmnist.photos.predicting import predict
from fmnist.photos.transfer import network, set_trainable
from fmnist.serving.classifier import load_keras_file
from fmnist.serving.loading import load_classifier
from tests.conftest import PHOTOS
from tests.photos.test_finetune import CLASSES, cfg_for, make_folder

SMALL = "MobileNetV3Small"  # the cheapest to build: about 1 s here
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every download fails at once (connection refused), here and on a machine with internet."""
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)


def test_a_backbone_with_random_weights_pools_and_loads_safely_as_the_photo_classifier(tmp_path):
    base = backbone(SMALL, (64, 64, 3), weights=None)
    assert base.output_shape == (None, 576)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in base.layers)
    cfg = checked("train", [f"photos={PHOTOS}", f"finetune.base=imagenet:{SMALL}", "photo.input=colour",
                            "photo.size=64", "finetune.dropout=0.2"])
    net = network(cfg, 3, base)
    assert net.output_shape == (None, 3) and not any(isinstance(layer, keras.Model) for layer in net.layers)
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    net.save(tmp_path / "net.keras")
    loaded = load_keras_file(tmp_path / "net.keras")  # safe_mode, as fmnist.predict and the served model load
    assert np.allclose(loaded(x, training=False), net(x, training=False), atol=1e-6)
    start, head = net.get_weights()[:-2], net.get_weights()[-2:]  # the classifier's kernel and bias come last
    assert head[0].shape == (576, 3) and all(np.array_equal(a, b) for a, b in zip(start, base.get_weights(), strict=True))
    set_trainable(net, "all", keep_norms=True)
    norms = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms) and net.layers[-1].trainable


@pytest.mark.parametrize("name", ["VGG16", "MobileNet"])  # caffe (BGR, mean) and [-1, 1] scaling
def test_the_scaling_inside_is_the_familys_preprocess_input_and_imagenet_weight_files_load(name, tmp_path):
    """keras.applications' own network fed its own preprocess_input, against ours fed [0, 1]
    RGB, with the same weights loaded as ImageNet's are: from a weights file, by layer order."""
    make = constructor(name)
    own = make(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    rng = np.random.default_rng(1)
    own.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") if w.ndim > 1 else w for w in own.get_weights()])
    with h5py.File(tmp_path / "w.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, own)
    ours = backbone(name, (32, 32, 3), weights=str(tmp_path / "w.h5"))
    x = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    expected = own.predict(sys.modules[make.__module__].preprocess_input(x * 255.0), verbose=0)
    assert np.allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_torch_style_scaling_is_measured_from_preprocess_input():
    scale, offset, order = family_scaling(constructor("DenseNet121"))
    assert order == [0, 1, 2]
    assert np.allclose(scale * 255, 1 / np.array([0.229, 0.224, 0.225]), rtol=1e-3)
    assert np.allclose(offset, -np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225]), rtol=1e-3)
    assert family_scaling(constructor("ResNet50"))[2] == [2, 1, 0]  # caffe: BGR


def test_an_unknown_name_or_too_small_a_photo_is_one_line():
    with pytest.raises(ConfigError, match="not a keras.applications network; did you mean MobileNetV3Small") as e:
        backbone("mobilenetv3small", (96, 96, 3))
    assert "\n" not in str(e.value) and "ResNet50" in str(e.value)
    with pytest.raises(ConfigError, match=r"imagenet:Xception: cannot take 32x32 photos \(Input size must be at "
                                          r"least 71x71.*\); set a larger photo.size"):
        backbone("Xception", (32, 32, 3))


def test_a_download_that_fails_is_one_line_and_quick(monkeypatch, tmp_path):
    offline(monkeypatch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no weights cached from an earlier run
    with pytest.raises(NoModelError) as e:
        backbone(SMALL, (96, 96, 3))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"finetune.base=imagenet:{SMALL}: could not download its "
                                                      "ImageNet weights (https://")
    assert f"they are cached in {tmp_path / 'keras' / 'models'} on first use" in message
    assert message.endswith("or start from scratch with finetune.base=none")
    assert not list((tmp_path / "keras" / "models").glob("*"))  # nothing half-written left in the cache


def test_the_config_takes_imagenet_names_on_rgb_photos_only(tmp_path):
    cfg = checked("train", [f"photos={tmp_path}", f"finetune.base=imagenet:{SMALL}", "photo.input=plain",
                            "photo.size=96"])
    assert cfg.finetune.imagenet == SMALL and not cfg.finetune.from_scratch
    assert base_tags(cfg) == {"base_model": f"imagenet:{SMALL}"}
    with pytest.raises(ConfigError, match=f"finetune.base=imagenet:{SMALL}: an ImageNet network takes RGB photos, "
                                          "not the gray fmnist look; set photo.input=colour"):
        validate(Config, compose("train", [f"photos={tmp_path}", f"finetune.base=imagenet:{SMALL}"]))
    with pytest.raises(ConfigError, match="name a keras.applications network after imagenet:"):
        validate(Config, compose("train", [f"photos={tmp_path}", "finetune.base=imagenet:", "photo.input=colour"]))


def test_a_sweep_trial_from_imagenet_keeps_the_experiments_photos_and_an_unreachable_one_is_dropped(
        monkeypatch, tmp_path, capsys):
    cfg = checked("train", ["experiment=finetune", f"photos={PHOTOS}",
                            f"search.finetune.base.values=[none,imagenet:{SMALL}]"])
    hp = kt.HyperParameters()
    hp.values["finetune.base"] = f"imagenet:{SMALL}"
    trial = PhotoHyperModel(cfg, 10).configure(hp)
    assert (trial.photo.input, trial.photo.size) == ("colour", 96) and trial.finetune.imagenet == SMALL
    offline(monkeypatch)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    usable = usable_space(cfg)
    assert usable.search["finetune.base"].values == ["none"]
    assert f"note: search.finetune.base: finetune.base=imagenet:{SMALL}: could not download" in capsys.readouterr().err


@pytest.mark.slow  # about 50 s on this busy CPU: photo preparation, two short stages, the logged model and its prediction
def test_fine_tuning_from_a_random_imagenet_network_logs_a_model_predict_loads(store, tmp_path):
    folder = make_folder(tmp_path / "photos")
    cfg = cfg_for(folder, tmp_path, f"finetune.base=imagenet:{SMALL}", "photo.input=colour", "photo.size=32",
                  "finetune.warmup_epochs=1", "finetune.augment.flip=true", "finetune.dropout=0.2")
    data = photo_data(cfg)
    net = network(cfg, len(data.classes), backbone(SMALL, cfg.photo.shape, weights=None))
    mlflow.set_experiment("imagenet")  # not an experiment id an earlier test left active in another store
    with mlflow.start_run():
        summary, uri = fit_and_log(cfg, data, net, [])
    assert 0 <= summary["val_accuracy"] <= 1
    classifier = load_classifier(uri, "fmnist-photos")
    assert classifier.photo.input == "colour" and list(classifier.classes) == list(CLASSES)
    out = tmp_path / "preds.csv"
    assert predict(checked("predict", [f"model={uri}", f"images={folder}/shoes", f"output={out}"])) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and all(r["class_name"] in CLASSES for r in rows)


@pytest.mark.slow  # about 20 s here, most of it starting TensorFlow and preparing the photos
def test_fmnist_finetune_without_the_weights_is_one_error_line_and_exit_1(tmp_path):
    folder = make_folder(tmp_path / "photos", classes=CLASSES[:2], per_class=1)
    env = {**os.environ, **OFFLINE, "KERAS_HOME": str(tmp_path / "keras"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("HYDRA_FULL_ERROR", None)
    out = subprocess.run([sys.executable, "-m", "fmnist.finetune", f"photos={folder}", f"model=imagenet:{SMALL}",
                          "photo.input=colour", "photo.size=96", f"finetune.cache={tmp_path / 'cache'}"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 1 and len(errors) == 1 and "Traceback" not in out.stdout + out.stderr, out.stderr
    assert errors[0].startswith(f"error: model: finetune.base=imagenet:{SMALL}: could not download its ImageNet "
                                "weights (")
    assert "Epoch" not in out.stdout  # nothing trained
