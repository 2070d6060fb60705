"""One fine-tuning run's record, shared by `fmnist.finetune` and the photo sweep's trials
(fmnist/kinds/photos.py): the user's photos, the Fashion-MNIST start, training with
everything it logs to MLflow, and registration against the holder of the alias on the same
photos."""

from __future__ import annotations

import time
from typing import Any, Callable

import keras
import mlflow
import numpy as np

from fmnist.batches import outputs
from fmnist.config import Config
from fmnist.errors import ConfigError, NoModelError
from fmnist.photos.imagenet import backbone
from fmnist.photos.photoset import PhotoArrays, PhotoData, load_photo_data
from fmnist.photos.transfer import for_inference, network, train_stages
from fmnist.reports.photos import log_photo_reports
from fmnist.search.registry import HolderScore, photo_holder_score, register_if_better
from fmnist.serving.classifier import log_photo_model
from fmnist.serving.loading import load_classifier
from fmnist.training.calibration import calibrated, expected_calibration_error, fit_temperature, scaled
from fmnist.training.fitting import accuracy, seed_everything
from fmnist.training.tracking import EpochLogger, flatten, run_tags, use_store


def photo_data(cfg: Config) -> PhotoData:
    if not cfg.photos:
        raise ConfigError("photos: give the folder of labelled photos, photos=DIR (one subfolder per class)")
    ft = cfg.finetune
    return load_photo_data(cfg.photos, cfg.validation, ft.val_fraction, cfg.seed, ft.cache, cfg.limits, ft.workers)


def load_base(cfg: Config) -> keras.Model | None:
    """The model to start from: a Fashion-MNIST classifier, an ImageNet backbone
    (`imagenet:NAME`, its weights fetched into the Keras cache on first use: a failed
    download is one line, here, before any training), or None for a network from scratch."""
    if cfg.finetune.from_scratch:
        return None
    if cfg.finetune.imagenet:
        return backbone(cfg.finetune.imagenet, cfg.photo.shape)
    try:
        model = load_classifier(cfg.finetune.base, cfg.mlflow.registered_model).model
    except NoModelError as e:
        raise ConfigError(f"finetune.base={cfg.finetune.base}: {e}; or start from scratch with model=none") from None
    if tuple(model.input_shape[1:]) != cfg.photo.shape:
        raise ConfigError(f"finetune.base={cfg.finetune.base}: takes {model.input_shape[1:]} inputs, not the "
                          f"{cfg.photo.shape} of photo.input={cfg.photo.input} photo.size={cfg.photo.size}")
    return model


def calibrate_on_selection(model: keras.Model, x_sel: np.ndarray, y_sel: np.ndarray,
                           probs: np.ndarray) -> tuple[keras.Model, np.ndarray, tuple[np.ndarray, float]]:
    """`model` wrapped with the temperature fitted on the selection split, its probabilities
    there, and (the probabilities before, T) for the reliability diagram; logs `temperature`,
    `ece_before` and `ece_after`. The selection split (validation=DIR2, else the held-out share
    of photos=DIR) is the only data a user's photos leave for it: on the training photos the
    network is sure and right, so they would teach T nothing. No other folder is read (a
    check set such as ../shared/real-photos/validation/ stays unseen), and ece_after, measured
    where T was fitted, flatters a little. Accuracy does not change: T keeps each row's argmax."""
    temperature = fit_temperature(probs, y_sel)
    scaled_model = calibrated(model, temperature)
    after = scaled(probs, temperature)  # what scaled_model answers there, without running the network again
    mlflow.log_metrics({"temperature": temperature, "ece_before": expected_calibration_error(probs, y_sel),
                        "ece_after": expected_calibration_error(after, y_sel)})
    return scaled_model, after, (probs, temperature)


def fit_and_log(cfg: Config, data: PhotoData, net: keras.Model, callbacks: list,
                check: Callable[[dict[str, list[float]]], None] = lambda history: None,
                stopped: Callable[[int, float], Any] = lambda epochs, seconds: None) -> tuple[dict[str, float], str]:
    """Train on the photos and leave in the active run what every fine-tuning leaves: the
    summary metrics, reports over the user's classes, and the model with its classes and
    photo steps (a PhotoClassifier), temperature-scaled when `finetune.calibrate`. `check`
    may reject the training (a sweep's trial that diverged or ran too slow) before anything
    is logged; `stopped` (epochs run, seconds) may answer a result for a sweep's trial
    stopped at a rung, which logs nothing more. Returns the summary and the model's URI
    (None for a stopped trial)."""
    a: PhotoArrays = data.arrays(cfg.photo)
    mlflow.log_metrics({"photos_train": len(a.y_train), "photos_val": len(a.y_val), "class_count": len(data.classes)})
    start = time.perf_counter()
    history = train_stages(net, cfg, (a.x_train, a.y_train), (a.x_val, a.y_val),
                           [EpochLogger(mlflow.active_run().info.run_id), *callbacks], cfg.seed)
    seconds = time.perf_counter() - start
    check(history)
    early = stopped(len(history.get("loss", [])), seconds)
    if early is not None:
        return early, None
    model = for_inference(net, cfg)
    probs = outputs(model, a.x_val)
    train, val = accuracy(model, a.x_train, a.y_train), float(np.mean(probs.argmax(1) == a.y_val))
    summary = {"train_accuracy": train, "val_accuracy": val, "overfit_gap": train - val}
    mlflow.log_metrics({**summary, "train_seconds": seconds, "epoch_seconds": seconds / max(1, len(history["loss"]))},
                       step=len(history["loss"]))
    calibration = None
    if cfg.finetune.calibrate:
        model, probs, calibration = calibrate_on_selection(model, a.x_val, a.y_val, probs)
    if cfg.report.enabled:
        log_photo_reports(history, a.y_val, probs, data.classes, list(a.val_files), cfg.limits, cfg.report.mistakes,
                          calibration)
    uri = log_photo_model(model, name="model", photo=cfg.photo, classes=data.classes)
    mlflow.set_tag("model_uri", uri)
    return summary, uri


def base_tags(cfg: Config) -> dict[str, str]:
    """Which model the run started from: the reference (`imagenet:NAME` for an ImageNet
    backbone) and, for a registry alias, its version."""
    if cfg.finetune.from_scratch:
        return {"base_model": "none"}
    ref = cfg.finetune.base
    uri = f"models:/{cfg.mlflow.registered_model}@best" if ref == "best" else ref
    tags = {"base_model": uri}
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri.removeprefix("models:/").split("@")
        tags["base_model_version"] = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    return tags


def photo_tags(cfg: Config, data: PhotoData) -> dict[str, str]:
    """What a registered photo model is tagged with besides its scores: the classes it answers
    with, the photos it learnt from, and its Fashion-MNIST start (`base_tags`)."""
    return {"classes": ",".join(data.classes), "photos": cfg.photos, **base_tags(cfg)}


def holder_score(cfg: Config, data: PhotoData) -> HolderScore:
    """How the holder of `finetune.registered_model`'s alias is measured: on these validation
    photos, each prepared with the holder's own photo steps (else `cfg.photo`'s)."""
    return photo_holder_score(cfg.finetune.registered_model, data.classes,
                              lambda steps: data.validation(steps or cfg.photo)[:2])


def register_photo_model(run_id: str, model_uri: str, cfg: Config, data: PhotoData,
                         val_accuracy: float) -> tuple[str, bool, float | None]:
    """The run's model as a new version of `finetune.registered_model`; the alias moves
    only if it beats the holder on these validation photos, each prepared as its model expects."""
    tags = {"val_accuracy": val_accuracy, "source_run": run_id, **photo_tags(cfg, data)}
    return register_if_better(model_uri, cfg.finetune.registered_model, cfg.selection.alias, val_accuracy, tags,
                              holder_score(cfg, data))


def finetune(cfg: Config) -> str:
    """One fine-tuning run, registered; returns the MLflow run id."""
    seed_everything(cfg.seed)
    data = photo_data(cfg)  # before the model: a bad folder costs no model loading
    use_store(cfg.mlflow)
    base = load_base(cfg)
    with mlflow.start_run(run_name=cfg.mlflow.run_name or f"finetune-{cfg.name}",
                          tags=run_tags(experiment=cfg.name, role="finetune", **base_tags(cfg))) as run:
        mlflow.log_params(flatten(cfg.model_dump(include={"photos", "validation", "photo", "finetune", "trainer",
                                                          "model", "seed"})))
        summary, uri = fit_and_log(cfg, data, network(cfg, len(data.classes), base), [])
        version, moved, held = register_photo_model(run.info.run_id, uri, cfg, data, summary["val_accuracy"])
    holder = "" if held is None else f" (holder: {held:.4f} on the same photos)"
    print(f"run {run.info.run_id}: train {summary['train_accuracy']:.4f}  val {summary['val_accuracy']:.4f}  "
          f"gap {summary['overfit_gap']:+.4f}; registered models:/{cfg.finetune.registered_model}/{version}"
          f"{', alias @' + cfg.selection.alias + ' moved to it' if moved else ', alias stays'}{holder}")
    return run.info.run_id
